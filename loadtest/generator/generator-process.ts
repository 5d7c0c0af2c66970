/**
 * Entry point of a forked generator process (see fleet.ts). Speaks a tagged message protocol over
 * the IPC channel: `run` → `result` (or `failed`), `close` → exit.
 */
import { PhaseRunner } from './phase.js';
import type { FleetRequest, FleetReply } from './fleet.js';

const runner = new PhaseRunner();
const reply = (msg: FleetReply) => process.send!(msg);

process.on('message', (raw) => {
  const msg = raw as FleetRequest;
  switch (msg.type) {
    case 'run':
      runner.run(msg.spec).then(
        (run) => reply({
          type: 'result', id: msg.id, snapshot: run.recorder.snapshot(), generatorCpuSeconds: run.generatorCpuSeconds,
          wallMs: run.wallMs, startedAtEpochMs: run.startedAtEpochMs, userIdsOrigin: run.userIdsOrigin,
          ...(run.routing !== undefined ? { routing: run.routing } : {}),
        }),
        (err: unknown) => reply({ type: 'failed', id: msg.id, message: err instanceof Error ? err.message : String(err) }),
      );
      break;
    case 'close':
      runner.close();
      process.disconnect();
      break;
    default: {
      const never: never = msg;
      throw new Error(`unknown message ${JSON.stringify(never)}`);
    }
  }
});
