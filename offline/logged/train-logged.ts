/**
 * `trainOnLoggedRows`: the cluster's feature log and event stream in, a model version out
 * (docs/offline.md "Training on logged rows"). Reads the served rows and the label events, joins
 * them after the wait window (join.ts), splits by time (split.ts), retrains the MMoE ranker from the
 * serving version's weights (warm-start.ts; from scratch when those cannot be read), calibrates on
 * the validation split, compares the new and the serving ranker.onnx on the test split, and
 * publishes `<outDir>/<version>/` with the serving towers unchanged (publish.ts), ready for a live
 * switch (`shardmap model`).
 */
import { basename, join, resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { rankerRowWidth } from '../../core/features/ranker-row.js';
import type { Calibration, ModelManifest } from '../../core/model/contract.js';
import { MODEL_FILES } from '../../core/model/contract.js';
import { failedPrecondition } from '../../core/status.js';
import { checkModelVersionName } from '../../cluster/node/model.js';
import { MmoeModel, mmoeShape } from '../models/mmoe.js';
import { exportMmoeRanker } from '../onnx/export.js';
import { loadServingManifest } from '../onnx/load.js';
import { PARITY_TOLERANCE, mmoeParity } from '../onnx/parity.js';
import { predictRows } from '../pipeline/evaluate.js';
import { OnnxRanker, onnxRankerMetrics, splitRowsOf } from './evaluate.js';
import type { LoggedFitStats } from './fit.js';
import { DEFAULT_LOGGED_EPOCHS, DEFAULT_LOGGED_LR, fitOnRows } from './fit.js';
import { fitClickCalibration } from '../pipeline/calibrate.js';
import type { JoinCounts, JoinedRows } from './join.js';
import { DEFAULT_WAIT_MS, joinLabels, loggedEventFilter } from './join.js';
import { publishLoggedVersion } from './publish.js';
import type { LabelEventsRead } from './read-events.js';
import { readLabelEvents } from './read-events.js';
import type { ServedRequestsRead } from './read-served.js';
import type { ServedRowsKeep } from './served.js';
import { DEFAULT_MAX_LOGGED_ROWS, readServedRequests } from './read-served.js';
import type { TimeSplit, TimeSplitOptions } from './split.js';
import { timeSplit } from './split.js';
import { warmStartMmoe } from './warm-start.js';

/**
 * How far before the earliest logged row the event read starts, ms: 60 s, room for the coordinator's
 * and the NATS server's clocks to disagree (servedAtMs is the one's, storage times the other's).
 */
export const EVENT_READ_MARGIN_MS = 60_000;

/** Options of {@link trainOnLoggedRows}. */
export interface TrainLoggedOptions extends TimeSplitOptions {
  readonly nc: NatsConnection;
  readonly cluster: string;
  /** Directory of the serving model version (`models/<version>`): its spec, towers, ranker and calibration. */
  readonly fromModelDir: string;
  /** Models root the new version is written under. */
  readonly outDir: string;
  /** Read the feature log from this storage time (epoch ms). Default: from the stream's first message. */
  readonly sinceMs?: number;
  /** Wait window, ms. Default {@link DEFAULT_WAIT_MS} (30 min). */
  readonly waitMs?: number;
  /** The join's "now", epoch ms. Default: the wall clock after reading. */
  readonly nowMs?: number;
  /** Passes over the train split. Default {@link DEFAULT_LOGGED_EPOCHS} (2). */
  readonly epochs?: number;
  /** Shuffle (and, from scratch, init) seed. Default 1. */
  readonly seed?: number;
  /** Adam learning rate. Default {@link DEFAULT_LOGGED_LR} (2e-3). */
  readonly lr?: number;
  /** Start from the serving ranker's weights when they can be read. Default true. */
  readonly warmStart?: boolean;
  /** Most logged rows read. Default {@link DEFAULT_MAX_LOGGED_ROWS}. */
  readonly maxRows?: number;
  /** Over `maxRows`: train on the oldest rows (default) or the newest (retrain-loop). */
  readonly keep?: ServedRowsKeep;
  /** Drop rows of another feature spec instead of refusing. Default false. */
  readonly skipOtherSpecs?: boolean;
  /** Train only on rows the user saw (join.ts JoinOptions.requireImpression). Default 'auto'. */
  readonly requireImpression?: boolean | 'auto';
  /** New version name. Default `<serving version>-logged-<UTC yyyymmdd-HHMMSS>`. */
  readonly version?: string;
  /** Wait of the readers' last fetch, ms. Default 2000. */
  readonly fetchWaitMs?: number;
  /** One line per phase. Default silent. */
  readonly log?: (line: string) => void;
}

/** What {@link trainOnLoggedRows} did. */
export interface TrainLoggedResult {
  readonly version: string;
  readonly dir: string;
  readonly manifest: ModelManifest;
  readonly servingVersion: string;
  readonly counts: JoinCounts;
  readonly split: { readonly train: number; readonly valid: number; readonly test: number };
  /** Test metrics of the new ranker (calibrated with its new calibration) and of the serving one (with its own). */
  readonly metrics: { readonly new: Readonly<Record<string, number>>; readonly serving: Readonly<Record<string, number>> };
  /** True when training started from the serving weights; else why not. */
  readonly warmStart: true | string;
  readonly fit: LoggedFitStats;
  readonly served: Pick<ServedRequestsRead, 'stream' | 'firstSeq' | 'lastSeq' | 'rows' | 'malformed' | 'undecodable' | 'truncated'>;
  readonly events: Pick<LabelEventsRead, 'stream' | 'firstSeq' | 'lastSeq' | 'undecodable' | 'otherEvents' | 'unrelated'> & { readonly labelEvents: number };
}

/** `<base>-logged-<UTC yyyymmdd-HHMMSS>`, with an earlier `-logged-…` suffix of `base` dropped. */
export function loggedVersionName(servingVersion: string, nowMs: number): string {
  const iso = new Date(nowMs).toISOString();
  const base = servingVersion.replace(/-logged-\d{8}-\d{6}$/, '');
  return `${base}-logged-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}`;
}

const isoOrEmpty = (ms: number): string => (Number.isFinite(ms) ? new Date(ms).toISOString() : '');

/** Reads, joins, trains, compares and publishes; see the module comment. */
export async function trainOnLoggedRows(o: TrainLoggedOptions): Promise<TrainLoggedResult> {
  const log = o.log ?? ((): void => undefined);
  if (o.sinceMs !== undefined && !(Number.isFinite(o.sinceMs) && o.sinceMs >= 0)) throw new TypeError(`option sinceMs must be a time >= 0 (epoch ms), got ${String(o.sinceMs)}`);
  if (o.lr !== undefined && !(Number.isFinite(o.lr) && o.lr > 0)) throw new TypeError(`option lr must be a number > 0, got ${String(o.lr)}`);
  if (o.version !== undefined) checkModelVersionName(o.version);
  const fromDir = resolve(o.fromModelDir);
  const serving = await loadServingManifest(fromDir);
  const spec = serving.featureSpec;
  const width = rankerRowWidth(spec);
  const fetch = o.fetchWaitMs !== undefined ? { fetchWaitMs: o.fetchWaitMs } : {};

  const served = await readServedRequests({ nc: o.nc, cluster: o.cluster, maxRows: o.maxRows ?? DEFAULT_MAX_LOGGED_ROWS, ...(o.keep !== undefined ? { keep: o.keep } : {}), ...fetch, ...(o.sinceMs !== undefined ? { startTimeMs: o.sinceMs } : {}) });
  log(`feature log ${served.stream}: ${served.requests.length} requests, ${served.rows} rows (seq ${served.firstSeq}..${served.lastSeq})${served.truncated ? ', truncated at --max-rows' : ''}`);
  if (served.requests.length === 0) throw failedPrecondition(`the feature log ${served.stream} holds no served rows${o.sinceMs !== undefined ? ` stored since ${isoOrEmpty(o.sinceMs)}` : ''}: is coordinator.featureLog.sampleRate > 0?`);
  let firstServed = Number.POSITIVE_INFINITY;
  for (const r of served.requests) firstServed = Math.min(firstServed, r.servedAtMs);
  const events = await readLabelEvents({ nc: o.nc, cluster: o.cluster, startTimeMs: Math.max(0, firstServed - EVENT_READ_MARGIN_MS), keep: loggedEventFilter(served.requests), ...fetch });
  log(`event stream ${events.stream}: ${events.events.length} impression/click/watch events of logged requests kept, ${events.unrelated} of other requests and ${events.otherEvents} of other types skipped (seq ${events.firstSeq}..${events.lastSeq})`);

  const nowMs = o.nowMs ?? Date.now();
  const joined = joinLabels(served.requests, events.events, {
    spec,
    featureSpecHash: serving.featureSpecHash,
    nowMs,
    eventsThroughMs: events.throughMs,
    ...(o.waitMs !== undefined ? { waitMs: o.waitMs } : {}),
    ...(o.skipOtherSpecs !== undefined ? { skipOtherSpecs: o.skipOtherSpecs } : {}),
    ...(o.requireImpression !== undefined ? { requireImpression: o.requireImpression } : {}),
  });
  const c = joined.counts;
  log(`join: ${c.joined} rows joined (${c.joinedRequests} requests), ${c.heldBack} held back, ${c.duplicateRows} duplicate, ${c.otherSpecRows} of another spec; ${c.clicked} clicked, ${c.watched} watched`);
  if (c.joined === 0 && c.heldBack > 0) {
    throw failedPrecondition(
      `no logged row's wait window has closed yet: all ${c.heldBack} rows were served less than ${c.waitMs} ms before ${isoOrEmpty(c.watermarkMs)} (the watermark: events are complete up to it); wait, or lower --wait-ms`,
    );
  }
  const split = timeSplit(joined.rows, o);
  const rows = joined.rows;

  // Train: from the serving weights when they can be read, else from scratch.
  const seed = o.seed ?? 1;
  let model: MmoeModel;
  let warmStart: true | string = 'warm start off';
  const lr = o.lr ?? DEFAULT_LOGGED_LR;
  const ws = o.warmStart === false ? undefined : await warmStartMmoe(join(fromDir, MODEL_FILES.ranker), width, { seed, lr });
  if (ws !== undefined && ws.model !== undefined) {
    model = ws.model;
    warmStart = true;
  } else {
    if (ws !== undefined) warmStart = ws.reason;
    model = new MmoeModel(width, { seed, lr });
    log(`training from scratch: ${warmStart}`);
  }
  const fit = fitOnRows(model, rows, split.train, { seed, ...(o.epochs !== undefined ? { epochs: o.epochs } : {}) });
  log(`trained on ${fit.examples} rows × ${fit.epochs} epochs (final loss ${fit.finalLoss.toFixed(4)}, ${Math.round(fit.examplesPerCpuSecond)} rows/CPU s)`);

  const valid = splitRowsOf(rows, split.valid);
  const validPred = await predictRows(async (x, b) => model.predict(x, b), valid, width);
  const calibration: Calibration = fitClickCalibration(valid.click, validPred.pClick);

  // Export + parity, then both ONNX rankers on the test split.
  const rankerBytes = exportMmoeRanker(model);
  const test = splitRowsOf(rows, split.test);
  const parity = await mmoeParity(model, rankerBytes, test.features);
  if (!(parity.maxAbsDiff <= PARITY_TOLERANCE)) {
    throw failedPrecondition(`ONNX parity failed for the new ranker.onnx: max |TS − ONNX| = ${parity.maxAbsDiff} over ${parity.rows} rows (tolerance ${PARITY_TOLERANCE})`);
  }
  const fresh = await OnnxRanker.open(rankerBytes, width);
  const old = await OnnxRanker.open(join(fromDir, MODEL_FILES.ranker), width);
  let metrics: TrainLoggedResult['metrics'];
  try {
    const testSlots = rows.slot.subarray(split.test.start, split.test.end);
    metrics = { new: await onnxRankerMetrics(fresh, test, calibration, testSlots), serving: await onnxRankerMetrics(old, test, serving.calibration.click, testSlots) };
  } finally {
    await fresh.close();
    await old.close();
  }

  const version = o.version ?? loggedVersionName(serving.version, nowMs);
  const manifest: ModelManifest = {
    version,
    createdAt: new Date().toISOString(),
    featureSpec: spec,
    featureSpecHash: serving.featureSpecHash,
    files: MODEL_FILES,
    tensors: serving.tensors,
    // The towers are the serving version's, so are the user vectors item shards calibrate on.
    ...(serving.retrievalQueries !== undefined ? { retrievalQueries: serving.retrievalQueries } : {}),
    calibration: { click: calibration },
    trainingData: trainingData(o, serving, served, events, joined.counts, rows, split, { warmStart, lr, seed, fit, rankerShape: mmoeShape(model) }),
    metrics: {
      mmoe: metrics.new,
      serving_mmoe: metrics.serving,
      onnx_parity: { ranker_max_abs_diff: parity.maxAbsDiff },
      training: { mmoe_examples_per_cpu_s: fit.examplesPerCpuSecond, mmoe_final_loss: fit.finalLoss },
    },
  };
  const dir = await publishLoggedVersion({ fromDir, outDir: o.outDir, manifest, ranker: rankerBytes });
  log(`published ${dir}`);
  return {
    version,
    dir,
    manifest,
    servingVersion: serving.version,
    counts: joined.counts,
    split: { train: split.train.end - split.train.start, valid: split.valid.end - split.valid.start, test: split.test.end - split.test.start },
    metrics,
    warmStart,
    fit,
    served: { stream: served.stream, firstSeq: served.firstSeq, lastSeq: served.lastSeq, rows: served.rows, malformed: served.malformed, undecodable: served.undecodable, truncated: served.truncated },
    events: { stream: events.stream, firstSeq: events.firstSeq, lastSeq: events.lastSeq, undecodable: events.undecodable, otherEvents: events.otherEvents, unrelated: events.unrelated, labelEvents: events.events.length },
  };
}

/** The manifest's `trainingData`: where the rows came from and what became of them. */
function trainingData(
  o: TrainLoggedOptions,
  serving: ModelManifest,
  served: ServedRequestsRead,
  events: LabelEventsRead,
  c: JoinCounts,
  rows: JoinedRows,
  split: TimeSplit,
  t: { readonly warmStart: true | string; readonly lr: number; readonly seed: number; readonly fit: LoggedFitStats; readonly rankerShape: string },
): ModelManifest['trainingData'] {
  const at = (i: number): string => isoOrEmpty(rows.servedAtMs[i] ?? Number.NaN);
  return {
    source: 'feature-log',
    cluster: o.cluster,
    fromModel: serving.version,
    // A warm start keeps the serving ranker's widths; from scratch it has DEFAULT_MMOE_WIDTHS.
    rankerShape: t.rankerShape,
    fromModelDir: basename(resolve(o.fromModelDir)),
    towersFrom: serving.version,
    servedStream: served.stream,
    servedSeqFirst: served.firstSeq,
    servedSeqLast: served.lastSeq,
    servedSince: o.sinceMs !== undefined ? isoOrEmpty(o.sinceMs) : '',
    eventStream: events.stream,
    eventSeqFirst: events.firstSeq,
    eventSeqLast: events.lastSeq,
    servedFrom: isoOrEmpty(c.firstServedAtMs),
    servedTo: isoOrEmpty(c.lastServedAtMs),
    watermark: isoOrEmpty(c.watermarkMs),
    waitMs: c.waitMs,
    servingModelVersions: c.modelVersions.join(','),
    rowsRead: served.rows,
    rowsJoined: c.joined,
    requestsJoined: c.joinedRequests,
    rowsHeldBack: c.heldBack,
    rowsDuplicate: c.duplicateRows,
    rowsOtherSpec: c.otherSpecRows,
    messagesMalformed: served.malformed,
    messagesUndecodable: served.undecodable,
    truncated: served.truncated,
    rowsClicked: c.clicked,
    rowsWatched: c.watched,
    eventsByRequestId: c.eventsByRequestId,
    eventsByUserVideo: c.eventsByFallback,
    eventsLate: c.lateEvents,
    eventsUnmatched: c.unmatchedEvents,
    eventsOfUnloggedRequests: events.unrelated,
    trainRows: split.train.end - split.train.start,
    validRows: split.valid.end - split.valid.start,
    testRows: split.test.end - split.test.start,
    trainServedTo: at(split.train.end - 1),
    testServedFrom: at(split.test.start),
    warmStart: t.warmStart === true,
    ...(t.warmStart !== true ? { fromScratchReason: t.warmStart } : {}),
    rankerEpochs: t.fit.epochs,
    learningRate: t.lr,
    seed: t.seed,
  };
}
