/**
 * Skew end to end: a tiny synthetic world, a real nats-server with the feature-log stream, and
 * ServedRows messages built as a coordinator builds them (the real writeRankerRow on replayed user
 * and item state, the inference position, retrieval score 0 as in unscored training rows) for
 * every other train-day impression, with one column deliberately shifted, plus messages of another
 * feature spec. The CLI must rank the shifted column first above the threshold, keep untouched
 * columns near 0, flag position as expected, and name the skipped spec hash.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer } from '../../cluster/nats/server.js';
import { EventType } from '../../core/events.js';
import { specHash } from '../../core/features/index.js';
import type { ItemFeatures } from '../../core/features/item.js';
import { applyEventToItem } from '../../core/features/item.js';
import { RANKER_SCALAR_FEATURES, rankerRowWidth, writeRankerRow } from '../../core/features/ranker-row.js';
import { DEFAULT_FEATURE_SPEC } from '../../core/features/spec.js';
import type { UserProfile } from '../../core/features/user.js';
import { applyEventToUser, newUserProfile } from '../../core/features/user.js';
import { StatusCode } from '../../core/status.js';
import { Subjects, servedStreamName } from '../../core/subjects.js';
import { Codecs } from '../../protos/codec.js';
import { measureSkew } from '../../offline/skew/measure.js';
import type { SkewReport } from '../../offline/skew/report.js';
import { generateWorld } from '../../offline/world/generate.js';
import { readEventBatches, readVideos, readWorldManifest } from '../../offline/world/reader.js';

const CLI = fileURLToPath(new URL('../../offline/cli.js', import.meta.url));
const SHIFTED = 'item_watch_ratio_prior';
const ROWS_PER_MESSAGE = 20;

/** Coordinator-style rows of every other train-day impression, via writeRankerRow. */
async function servingRows(worldDir: string): Promise<{ rows: Float32Array; count: number }> {
  const spec = DEFAULT_FEATURE_SPEC;
  const f = rankerRowWidth(spec);
  const manifest = await readWorldManifest(worldDir);
  const items = new Map<number, ItemFeatures>();
  for await (const v of readVideos(worldDir)) items.set(v.videoId, { ...v, impressions: 0, clicks: 0, watchRatioSum: 0, watches: 0 });
  const users = new Map<number, UserProfile>();
  const out: number[] = [];
  const row = new Float32Array(f);
  let impressions = 0;
  for await (const batch of readEventBatches(worldDir, { days: manifest.split.trainDays })) {
    for (const ev of batch) {
      let user = users.get(ev.userId);
      if (user === undefined) users.set(ev.userId, (user = newUserProfile(ev.userId, spec)));
      const item = items.get(ev.videoId);
      if (ev.type === EventType.IMPRESSION && item !== undefined && impressions++ % 2 === 1) {
        writeRankerRow(row, 0, user, item, 0, ev.context, spec.inferencePosition, ev.tsMs, spec);
        out.push(...row);
      }
      applyEventToUser(user, ev, item, spec);
      if (item !== undefined) applyEventToItem(item, ev, item.durationS);
    }
  }
  return { rows: Float32Array.from(out), count: out.length / f };
}

t.test('skew CLI over a real feature log ranks the shifted column first', { timeout: 60_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upnext-skew-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const world = await generateWorld({ name: 'skew-tiny', outDir: join(root, 'worlds'), videos: 400, users: 300, days: 3, seed: 5, createdAt: '2024-01-01T00:00:00Z' });
  const server = await startNatsServer({ dataDir: join(root, 'nats') });
  t.teardown(() => server.stop());
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());

  const cluster = 'skew-e2e';
  await (await jetstreamManager(nc)).streams.add({ name: servedStreamName(cluster), subjects: [Subjects.served(cluster)], storage: StorageType.File });
  const spec = DEFAULT_FEATURE_SPEC;
  const f = rankerRowWidth(spec);
  const hash = specHash(spec);
  const { rows, count } = await servingRows(world.dir);
  t.ok(count > 500, `${count} serving rows`);
  const shiftCol = RANKER_SCALAR_FEATURES.indexOf(SHIFTED);
  for (let r = 0; r < count; r++) rows[r * f + shiftCol]! += 0.2;

  const js = jetstream(nc);
  const publish = async (featureSpecHash: string, from: number, n: number, seq: number): Promise<void> => {
    const part = rows.slice(from * f, (from + n) * f);
    await js.publish(
      Subjects.served(cluster),
      Codecs.servedRows.encode({
        requestId: `req-${seq}`,
        userId: seq,
        modelVersion: 'v-test',
        featureSpecHash,
        width: f,
        videoIds: Array.from({ length: n }, (_, i) => from + i + 1),
        slots: Array.from({ length: n }, (_, i) => i),
        rows: new Uint8Array(part.buffer),
        servedAtMs: Date.UTC(2024, 0, 10) + seq,
        surface: 'home',
      }),
    );
  };
  let seq = 0;
  for (let from = 0; from < count; from += ROWS_PER_MESSAGE) {
    await publish(hash, from, Math.min(ROWS_PER_MESSAGE, count - from), seq++);
    // A coordinator of another build, now and then: must be skipped, not mixed in.
    if (seq % 10 === 0) await publish('0123456789abcdef', from, Math.min(ROWS_PER_MESSAGE, count - from), seq++);
  }

  const out = join(root, 'skew.json');
  const res = await promisify(execFile)(process.execPath, [CLI, 'skew', '--nats', server.url, '--cluster', cluster, '--world', world.dir, '--out', out]);
  const report = JSON.parse(await readFile(out, 'utf8')) as SkewReport;
  t.comment(res.stdout);
  const c = report.conditions;
  t.equal(c.serving_rows, count, 'every row of the spec read');
  t.equal(c.feature_spec_hash, hash);
  t.ok(c.training_rows > 1000, `${c.training_rows} training rows`);
  t.equal(c.serving_skipped.length, 1);
  t.match(c.serving_skipped[0], /0123456789abcdef/);
  t.match(c.serving_skipped[0], new RegExp(hash));
  t.same(c.serving_model_versions, ['v-test']);

  const first = report.features[0]!;
  t.equal(first.name, SHIFTED, 'the shifted column ranks first');
  t.ok(first.kl !== null && first.kl > 0.1, `its KL ${first.kl}`);
  t.equal(first.flag, 'skew');
  t.ok(first.serving_mean !== null && first.training_mean !== null && Math.abs(first.serving_mean - first.training_mean - 0.2) < 0.01, 'means differ by the shift');
  const position = report.features.find((x) => x.name === 'position')!;
  t.equal(position.flag, 'expected', 'position: logged slot in training, inference value serving');
  t.equal(report.features.find((x) => x.name === 'retrieval_score')!.flag, 'unscored');
  for (const x of report.features) {
    if (x.name === SHIFTED || x.name === 'position') continue;
    t.ok(x.kl !== null && x.kl < 0.05, `${x.name} KL ${x.kl} near 0`);
  }
  t.same(report.features.filter((x) => x.flag === 'skew').map((x) => x.name), [SHIFTED], 'nothing else flagged');
  t.match(res.stdout, new RegExp(`flagged: ${SHIFTED}`));

  await t.rejects(measureSkew({ nc, cluster: 'no-such-cluster', worldDir: world.dir }), { code: StatusCode.NOT_FOUND });
  // The same log read for another spec finds nothing and names the hashes it skipped.
  await t.rejects(measureSkew({ nc, cluster, worldDir: world.dir, spec: { ...spec, historyLength: 10 } }), { code: StatusCode.FAILED_PRECONDITION, message: /0123456789abcdef/ });
});
