// One delivery = one (event, subscription) pair, carried as a JSON message on the deliveries stream.
import { z } from 'zod';
import { MalformedDeliveryError } from './errors';
import { EVENT_TYPES } from './names';

const deliverySchema = z.object({
  v: z.literal(1),
  webhookId: z.string().min(1).max(200),
  subscriptionId: z.string().uuid(),
  type: z.enum([
    EVENT_TYPES.threshold,
    EVENT_TYPES.windowClosed,
    EVENT_TYPES.detection,
    EVENT_TYPES.test,
    EVENT_TYPES.alertSilence,
    EVENT_TYPES.alertRecovery,
    EVENT_TYPES.alertAnomaly,
  ]),
  /** The exact request body, fixed at match time. */
  body: z.string(),
  /** 0 for the original; +1 per DLQ redrive (attempts are counted per generation). */
  generation: z.number().int().min(0),
  createdAt: z.string(),
});
export type DeliveryMessage = z.infer<typeof deliverySchema>;

export const CONTENT_TYPE_DELIVERY = 'application/json; sluice=webhook-delivery.v1';

export function encodeDelivery(d: DeliveryMessage): Uint8Array {
  return Buffer.from(JSON.stringify(d));
}

/** Throws {@link MalformedDeliveryError}. */
export function decodeDelivery(bytes: Uint8Array): DeliveryMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    );
  } catch (err) {
    throw new MalformedDeliveryError(`delivery is not JSON: ${(err as Error).message}`);
  }
  const fast = asDelivery(raw);
  if (fast) return fast;
  const r = deliverySchema.safeParse(raw);
  if (!r.success)
    throw new MalformedDeliveryError(
      `delivery does not match the format: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

// The hot path of decodeDelivery: the same checks as deliverySchema written out (zod costs several
// µs per delivery); anything this does not accept goes through zod, which also words the error.
const UUID =
  /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff)$/;
const TYPES: ReadonlySet<unknown> = new Set([
  EVENT_TYPES.threshold,
  EVENT_TYPES.windowClosed,
  EVENT_TYPES.detection,
  EVENT_TYPES.test,
  EVENT_TYPES.alertSilence,
  EVENT_TYPES.alertRecovery,
  EVENT_TYPES.alertAnomaly,
]);

function asDelivery(raw: unknown): DeliveryMessage | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  const { webhookId, subscriptionId, type, body, generation, createdAt } = o;
  if (o['v'] !== 1) return undefined;
  if (typeof webhookId !== 'string' || webhookId.length < 1 || webhookId.length > 200)
    return undefined;
  if (typeof subscriptionId !== 'string' || !UUID.test(subscriptionId)) return undefined;
  if (!TYPES.has(type)) return undefined;
  if (typeof body !== 'string' || typeof createdAt !== 'string') return undefined;
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0)
    return undefined;
  return {
    v: 1,
    webhookId,
    subscriptionId,
    type: type as DeliveryMessage['type'],
    body,
    generation,
    createdAt,
  };
}

/** `Nats-Msg-Id` of a delivery: the webhook-id for the original, suffixed per redrive. */
export function deliveryMsgId(d: Pick<DeliveryMessage, 'webhookId' | 'generation'>): string {
  return d.generation === 0 ? d.webhookId : `${d.webhookId}:g${d.generation}`;
}
