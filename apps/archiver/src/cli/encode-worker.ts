// The archiver's encoder thread (see encoder.ts): not a command, but an entry point besides the
// service, which the build bundles beside main.js as encode-worker.js.
import { parentPort } from 'node:worker_threads';
import { runEncodeRequest, transferList, type EncodeReply, type EncodeRequest } from '../encoder';

const port = parentPort;
if (!port) throw new Error('encode-worker runs as the archiver’s worker thread only');

port.on('message', (req: EncodeRequest) => {
  let reply: EncodeReply;
  try {
    const bodies = runEncodeRequest(req);
    reply = { id: req.id, bodies, arena: req.segment.arena };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    reply = { id: req.id, error: { name: e.name, message: e.message, stack: e.stack } };
  }
  port.postMessage(reply, 'bodies' in reply ? transferList([...reply.bodies, reply.arena]) : []);
});

// Loaded: the archiver waits for this before it starts consuming.
port.postMessage({ ready: true } satisfies EncodeReply);
