import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { testUrls } from './env';

/** A NATS connection for one test file; streams registered with `track` are deleted by `cleanup`. */
export interface NatsFixture {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** Remember a stream to delete on cleanup. */
  track(stream: string): string;
  /** Reads every message currently in `stream` (ordered consumer, no side effects). */
  readAll(stream: string, subject?: string): Promise<JsMsg[]>;
  cleanup(): Promise<void>;
}

export async function natsFixture(): Promise<NatsFixture> {
  const nc = await connect({ servers: testUrls.nats, name: 'sluice-test' });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const streams = new Set<string>();
  return {
    nc,
    js,
    jsm,
    track(stream) {
      streams.add(stream);
      return stream;
    },
    async readAll(stream, subject) {
      const info = await jsm.streams.info(stream);
      const total = subject
        ? ((await jsm.streams.info(stream, { subjects_filter: subject })).state.subjects?.[
            subject
          ] ?? 0)
        : info.state.messages;
      const out: JsMsg[] = [];
      if (info.state.messages === 0 || total === 0) return out;
      const consumer = await js.consumers.get(
        stream,
        subject ? { filter_subjects: [subject] } : {},
      );
      const iter = await consumer.fetch({ max_messages: Math.max(total, 1), expires: 2_000 });
      for await (const m of iter) {
        out.push(m);
        if (out.length >= total) break;
      }
      await iter.close();
      return out;
    },
    async cleanup() {
      for (const s of streams) await jsm.streams.delete(s).catch(() => undefined);
      await nc.drain().catch(() => undefined);
    },
  };
}
