import { type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import { type NatsConnection } from '@nats-io/transport-node';
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
export declare function natsFixture(): Promise<NatsFixture>;
