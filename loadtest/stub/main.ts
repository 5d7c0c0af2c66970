/**
 * `node dist/loadtest/stub/main.js [--port 50051] [--delay-ms 0]`: runs the stub Recommender until
 * killed, to try the load generator without a cluster (`--target 127.0.0.1:50051 --pid stub=<pid>`).
 */
import { startStubRecommender } from './stub-server.js';

const args = process.argv.slice(2);
const flag = (name: string, def: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const stub = await startStubRecommender({ port: flag('--port', 50051), delayMs: flag('--delay-ms', 0), host: '127.0.0.1' });
process.stdout.write(`stub Recommender on ${stub.address} (pid ${process.pid})\n`);
const stop = () => void stub.stop().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
