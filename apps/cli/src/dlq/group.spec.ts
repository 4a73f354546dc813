import { encodeBatch, topology } from '@sluice/contracts';
import { createDeviceHasher } from '@sluice/observability';
import { compactSeqs, LetterGroups, MAX_GROUP_SEQS } from './group';
import { decodeLetter, letterDevices, matchesFilter, UNREADABLE_CLASS } from './letter';
import { rawLetter, reading } from './test-fixtures/letters';

const topo = topology('');
const hash = createDeviceHasher('group-spec-key-0123456789');
const batchOf = (...devices: string[]) =>
  Buffer.from(encodeBatch({ batchId: 'b', events: devices.map((d, i) => reading(`e${i}`, d)) }));

describe('decodeLetter', () => {
  it('reads provenance, the per-event headers and the batch of a telemetry subject', () => {
    const l = decodeLetter(
      rawLetter(
        3,
        { service: 'aggregator', payload: batchOf('d1', 'd2', 'd1') },
        { headers: { 'Sluice-Dlq-Event-Index': '2', 'Sluice-Dlq-Event-Id': 'e2' } },
      ),
      topo,
    );
    expect(l).toMatchObject({
      seq: 3,
      service: 'aggregator',
      errorClass: 'RecordRejectedError',
      originalSubject: 'telemetry.clean.eu',
      originalStream: 'TELEMETRY',
      originalSequence: 10,
      event: { index: 2, id: 'e2' },
      content: { kind: 'batch' },
    });
    expect([...letterDevices(l)]).toEqual([
      ['d1', 2],
      ['d2', 1],
    ]);
  });

  it('does not decode payloads of other subjects, and marks poison batches', () => {
    const other = decodeLetter(
      rawLetter(1, { originalSubject: 'webhook.deliveries.x', payload: batchOf('d1') }),
      topo,
    );
    expect(other.content).toEqual({ kind: 'other' });
    expect(letterDevices(other).size).toBe(0);
    const poison = decodeLetter(rawLetter(2, { payload: Buffer.from('nope') }), topo);
    expect(poison.content.kind).toBe('undecodable-batch');
  });

  it('still lists a DLQ message that is not a DeadLetter, from its headers', () => {
    const l = decodeLetter(
      {
        seq: 5,
        subject: 'dlq.dedupe',
        headers: { 'Sluice-Dlq-Original-Subject': 'telemetry.raw.eu' },
        data: Buffer.from('{"not":"protobuf"}'),
        storedAt: new Date(0),
      },
      topo,
    );
    expect(l).toMatchObject({
      service: 'dedupe',
      errorClass: UNREADABLE_CLASS,
      originalSubject: 'telemetry.raw.eu',
      failedAt: new Date(0),
    });
    expect(l.unreadable).toBeDefined();
  });
});

describe('matchesFilter', () => {
  const l = decodeLetter(
    rawLetter(1, { service: 'dedupe', errorClass: 'ClaimError', payload: batchOf('d1', 'd2') }),
    topo,
  );
  const at = l.failedAt.getTime();
  it.each([
    [{}, true],
    [{ services: ['dedupe', 'x'] }, true],
    [{ services: ['x'] }, false],
    [{ errorClasses: ['ClaimError'] }, true],
    [{ errorClasses: ['claimerror'] }, false],
    [{ since: new Date(at) }, true],
    [{ since: new Date(at + 1) }, false],
    [{ until: new Date(at) }, false],
    [{ until: new Date(at + 1) }, true],
    [{ deviceHashes: [hash('d2')] }, true],
    [{ deviceHashes: [hash('d3')] }, false],
    [{ services: ['dedupe'], deviceHashes: [hash('d3')] }, false],
  ])('%j → %s', (filter, expected) => {
    expect(matchesFilter(l, filter, hash)).toBe(expected);
  });
});

describe('LetterGroups', () => {
  it('counts a letter under each of its devices and letters without events under none', () => {
    const g = new LetterGroups(hash);
    g.add(decodeLetter(rawLetter(1, { payload: batchOf('d1', 'd2', 'd1') }), topo));
    g.add(decodeLetter(rawLetter(2, { payload: batchOf('d1') }), topo));
    g.add(
      decodeLetter(
        rawLetter(3, { service: 'dedupe', errorClass: 'X', payload: Buffer.from('?') }),
        topo,
      ),
    );
    g.add(
      decodeLetter(
        rawLetter(4, { service: 'dedupe', errorClass: 'X', payload: Buffer.from('?') }),
        topo,
      ),
    );
    expect(g.letters).toBe(4);
    const rows = g.list().map((r) => ({
      ...r,
      oldestFailedAt: r.oldestFailedAt.getUTCSeconds(),
      newestFailedAt: r.newestFailedAt.getUTCSeconds(),
    }));
    expect(rows).toEqual([
      {
        service: 'dedupe',
        errorClass: 'X',
        device: null,
        letters: 2,
        events: 0,
        oldestFailedAt: 3,
        newestFailedAt: 4,
        seqs: [3, 4],
      },
      {
        service: 'mongo-capture',
        errorClass: 'RecordRejectedError',
        device: hash('d1'),
        letters: 2,
        events: 3,
        oldestFailedAt: 1,
        newestFailedAt: 2,
        seqs: [1, 2],
      },
      {
        service: 'mongo-capture',
        errorClass: 'RecordRejectedError',
        device: hash('d2'),
        letters: 1,
        events: 1,
        oldestFailedAt: 1,
        newestFailedAt: 1,
        seqs: [1],
      },
    ]);
  });

  it('keeps at most MAX_GROUP_SEQS sequences but counts every letter', () => {
    const g = new LetterGroups(hash);
    for (let i = 1; i <= MAX_GROUP_SEQS + 5; i++) g.add(decodeLetter(rawLetter(i), topo));
    const [row] = g.list();
    expect(row!.letters).toBe(MAX_GROUP_SEQS + 5);
    expect(row!.seqs).toHaveLength(MAX_GROUP_SEQS);
  });
});

describe('compactSeqs', () => {
  it.each([
    [[], ''],
    [[4], '4'],
    [[1, 2, 3, 7, 9, 10], '1-3,7,9-10'],
    [[1, 3, 5, 7, 9, 11], '1,3,5,7,…'],
  ])('%j → %s', (seqs, text) => {
    expect(compactSeqs(seqs)).toBe(text);
  });
});
