/**
 * train-logged end to end with real parts: a real nats-server, the tiny test world's requests
 * logged through the coordinator's own publishers (FeatureLog: ServedRows rows written by
 * writeRankerRow from replayed user and item state, inference position; EventPublisher: the
 * world's CLICK and WATCH events with their request ids, as LogEvents appends them), then
 * training on them as of a time (the last requests held back, exact counts), and the CLI once
 * every window has closed: the published version loads as the cluster loads models, passes the
 * live-switch rule against the serving version (same towers), and its ranker.onnx runs.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import ort from 'onnxruntime-node';
import { EventPublisher } from '../../actors/coordinator/events.js';
import { FeatureLog } from '../../actors/coordinator/feature-log.js';
import { loadServingModel } from '../../actors/coordinator/model.js';
import { checkLiveSwitch, readModelDir, readModelDirAt } from '../../cluster/node/model.js';
import type { InteractionEvent } from '../../core/events.js';
import { EventType } from '../../core/events.js';
import { specHash } from '../../core/features/index.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { applyEventToItem } from '../../core/features/item.js';
import { rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import type { UserProfile } from '../../core/features/user.js';
import { applyEventToUser, newUserProfile } from '../../core/features/user.js';
import { MODEL_FILES, TENSORS } from '../../core/model/contract.js';
import { trainOnLoggedRows } from '../../offline/logged/train-logged.js';
import { readEventBatches, readVideos, readWorldManifest } from '../../offline/world/reader.js';
import { ensureTinyAssets } from '../fixtures/assets.js';
import { natsFixture } from '../fixtures/nats.js';

const CLI = fileURLToPath(new URL('../../offline/cli.js', import.meta.url));
const WAIT_MS = 3000;
const MAX_ROWS = 6000;

interface WorldRequest {
  readonly requestId: string;
  readonly userId: number;
  readonly videoIds: number[];
  readonly slots: number[];
  readonly rows: number[];
  readonly labels: InteractionEvent[];
}

/** The world's requests of its last two days, with coordinator-style rows and their CLICK/WATCH events. */
async function worldRequests(worldDir: string, f: number): Promise<WorldRequest[]> {
  const { featureSpec: spec } = (await ensureTinyAssets()).manifest;
  const manifest = await readWorldManifest(worldDir);
  const items = new Map<number, ItemFeatures>();
  for await (const v of readVideos(worldDir)) items.set(v.videoId, { ...v, impressions: 0, clicks: 0, watchRatioSum: 0, watches: 0 });
  const users = new Map<number, UserProfile>();
  const byId = new Map<string, WorldRequest>();
  const order: WorldRequest[] = [];
  const row = new Float32Array(f);
  let rows = 0;
  const firstDay = manifest.days - 2;
  for await (const batch of readEventBatches(worldDir)) {
    for (const ev of batch) {
      let user = users.get(ev.userId);
      if (user === undefined) users.set(ev.userId, (user = newUserProfile(ev.userId, spec)));
      const item = items.get(ev.videoId);
      const collecting = ev.tsMs >= manifest.startMs + firstDay * 86_400_000 && ev.requestId !== '';
      if (collecting && ev.type === EventType.IMPRESSION && item !== undefined) {
        let req = byId.get(ev.requestId);
        if (req === undefined && rows < MAX_ROWS) {
          req = { requestId: ev.requestId, userId: ev.userId, videoIds: [], slots: [], rows: [], labels: [] };
          byId.set(ev.requestId, req);
          order.push(req);
        }
        if (req !== undefined && !req.videoIds.includes(ev.videoId)) {
          writeRankerRow(row, 0, user, item, 0, ev.context, spec.inferencePosition, ev.tsMs, spec);
          req.videoIds.push(ev.videoId);
          req.slots.push(Math.max(0, ev.position));
          req.rows.push(...row);
          rows++;
        }
      } else if (collecting && (ev.type === EventType.CLICK || ev.type === EventType.WATCH)) {
        byId.get(ev.requestId)?.labels.push(ev);
      }
      applyEventToUser(user, ev, item, spec);
      if (item !== undefined) applyEventToItem(item, ev, item.durationS);
    }
  }
  return order;
}

/** (request, video) pairs of `reqs` with a CLICK among their events. */
function clickedPairs(reqs: readonly WorldRequest[]): number {
  let n = 0;
  for (const r of reqs) n += r.videoIds.filter((v) => r.labels.some((e) => e.type === EventType.CLICK && e.videoId === v)).length;
  return n;
}

const rowsOf = (reqs: readonly WorldRequest[]): number => reqs.reduce((n, r) => n + r.videoIds.length, 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

t.test('train-logged over a real feature log and event stream', { timeout: 120_000 }, async (t) => {
  const assets = await ensureTinyAssets();
  const spec = assets.manifest.featureSpec;
  const f = rankerRowWidth(spec);
  const hash = specHash(spec);
  const nats = await natsFixture(t, 'upnext-logged');
  const outDir = await mkdtemp(join(tmpdir(), 'upnext-logged-models-'));
  t.teardown(() => rm(outDir, { recursive: true, force: true }));
  const cluster = `logged-e2e-${process.pid}`;

  const requests = await worldRequests(assets.worldDir, f);
  const cut = Math.floor(requests.length * 0.85);
  const phaseA = requests.slice(0, cut);
  const phaseB = requests.slice(cut);
  t.ok(rowsOf(phaseA) > 2000 && clickedPairs(phaseA) > 20, `${requests.length} requests, ${rowsOf(requests)} rows, ${clickedPairs(phaseA)} clicked in phase A`);

  const featureLog = await FeatureLog.create(nats.nc, cluster, { sampleRate: 1, maxAgeMs: 0, maxBytes: 1 << 30 });
  const events = await EventPublisher.create(nats.nc, cluster, 4, 5000);
  const DUPLICATE = 5;
  const serve = async (reqs: readonly WorldRequest[]): Promise<void> => {
    for (const [i, r] of reqs.entries()) {
      const record = { requestId: r.requestId, userId: r.userId, modelVersion: assets.manifest.version, featureSpecHash: hash, surface: 'home', videoIds: r.videoIds, slots: r.slots, rows: Float32Array.from(r.rows), width: f };
      featureLog.log(record);
      // A retried request sampled twice: counted once.
      if (reqs === phaseA && i === DUPLICATE) featureLog.log(record);
      if (r.labels.length > 0) await events.publish(r.labels);
    }
    await nats.nc.flush();
  };
  await serve(phaseA);
  const tMid = Date.now();
  await sleep(5);
  await serve(phaseB);
  t.equal(featureLog.stats().publishFailures, 0);

  // As of tMid + WAIT_MS: phase A's windows have closed, phase B's have not.
  while (Date.now() <= tMid + WAIT_MS) await sleep(50);
  const asOf = await trainOnLoggedRows({
    nc: nats.nc,
    cluster,
    fromModelDir: assets.modelDir,
    outDir,
    waitMs: WAIT_MS,
    nowMs: tMid + WAIT_MS,
    epochs: 1,
    minSplitRows: 100,
    version: 'logged-as-of',
  });
  const c = asOf.counts;
  t.equal(c.joined, rowsOf(phaseA), 'every phase A row joined once');
  t.equal(c.heldBack, rowsOf(phaseB), 'every phase B row held back');
  t.equal(c.duplicateRequests, 1);
  t.equal(c.duplicateRows, phaseA[DUPLICATE]!.videoIds.length);
  t.equal(c.clicked, clickedPairs(phaseA), 'clicks joined by request id and video');
  t.equal(c.lateEvents, 0);
  t.equal(asOf.split.train + asOf.split.valid + asOf.split.test, c.joined);
  t.equal(asOf.warmStart, true, 'started from the serving ranker');
  for (const m of [asOf.metrics.new, asOf.metrics.serving]) t.ok(m['click_auc']! > 0.5 && m['click_auc']! < 1, `click AUC ${m['click_auc']}`);
  for (const m of [asOf.metrics.new, asOf.metrics.serving]) t.ok(m['click_auc_within_slot']! > 0 && m['click_auc_within_slot']! < 1, `click AUC within a slot ${m['click_auc_within_slot']}`);

  // The CLI once every window has closed.
  const lastServed = Date.now();
  while (Date.now() <= lastServed + WAIT_MS) await sleep(50);
  const res = await promisify(execFile)(process.execPath, [
    CLI, 'train-logged', '--nats', nats.url, '--cluster', cluster, '--from-model', assets.modelDir,
    '--wait-ms', String(WAIT_MS), '--out', outDir, '--epochs', '1', '--min-split-rows', '100', '--quiet',
  ]);
  t.comment(res.stdout);
  const version = /new version: (\S+)\s*$/.exec(res.stdout)?.[1];
  if (version === undefined) throw new Error(`no version in ${res.stdout}`);
  t.match(res.stdout, /held back 0 /);
  t.match(res.stdout, new RegExp(`joined ${rowsOf(requests)} `));
  t.match(res.stdout, /\nnew +\S+ +0\.\d+/);
  t.match(res.stdout, /\nserving +\S+ +0\.\d+/);

  // Loadable as the cluster loads a model, switchable live against the serving version.
  const serving = await loadServingModel(join(outDir, version));
  t.equal(serving.version, version);
  t.equal(serving.specHash, hash);
  const next = await readModelDir(outDir, version);
  checkLiveSwitch(await readModelDirAt(assets.modelDir), next);
  const m = next.manifest;
  t.equal(m.trainingData['source'], 'feature-log');
  t.equal(m.trainingData['rowsJoined'], rowsOf(requests));
  t.equal(m.trainingData['rowsHeldBack'], 0);
  t.equal(m.trainingData['fromModel'], assets.manifest.version);
  t.ok(typeof m.metrics['mmoe']?.['click_auc'] === 'number' && typeof m.metrics['serving_mmoe']?.['click_auc'] === 'number', 'both rankers measured');
  t.ok(m.calibration.click.type !== 'identity', `calibration ${m.calibration.click.type}`);

  const session = await ort.InferenceSession.create(join(outDir, version, MODEL_FILES.ranker), { intraOpNumThreads: 1 });
  t.teardown(() => session.release());
  const x = Float32Array.from(requests[0]!.rows);
  const b = requests[0]!.videoIds.length;
  const out = await session.run({ [TENSORS.ranker.features]: new ort.Tensor('float32', x, [b, f]) });
  const p = out[TENSORS.ranker.pClick]!.data as Float32Array;
  t.equal(p.length, b);
  t.ok([...p].every((v) => v > 0 && v < 1), 'P(click) in (0, 1)');
});
