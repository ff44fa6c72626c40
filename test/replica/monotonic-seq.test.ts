// A read node's reported seq never steps back within a generation: docs travel over separate
// connections, so the meta doc can arrive with a doc's newer changedAt before the doc's own update.
// layout.completeSeq alone then drops from meta's seq to the doc's stamp (the 142 → 86 the issue
// saw); read-model.seqOf keeps the highest value each doc has shown.
import { describe, expect, it } from 'vitest';
import * as Y from 'yjs';
import { CHANGED_AT, META_DOC, STAMP, accountShardDoc, completeSeq } from '../../src/publish/layout.js';
import { seqOf, type DocSource } from '../../src/replica/read-model.js';

function source() {
  const meta = new Y.Doc();
  const shard = new Y.Doc();
  const docs = new Map([[META_DOC, meta], [accountShardDoc(0), shard]]);
  const src: DocSource = { doc: (n) => docs.get(n), meta };
  const setMeta = (seq: number, changedAt: number) =>
    meta.transact(() => {
      meta.getMap(STAMP).set('seq', seq);
      meta.getMap(CHANGED_AT).set(accountShardDoc(0), changedAt);
    });
  const setShard = (seq: number) => shard.getMap(STAMP).set('seq', seq);
  return { src, shard, meta, setMeta, setShard };
}

describe('monotonic seq within a generation', () => {
  it('never reports less than before when meta runs ahead of a doc', () => {
    const { src, shard, meta, setMeta, setShard } = source();
    const scope = [accountShardDoc(0)];
    setShard(86);
    setMeta(142, 86); // the shard last changed at 86: complete up to 142
    expect(seqOf(src, scope)).toBe(142);
    // Meta arrives first with the shard's next change at 150; the shard's update is still in flight.
    setMeta(151, 150);
    expect(completeSeq(accountShardDoc(0), shard, meta)).toBe(86); // what a plain read would say
    expect(seqOf(src, scope)).toBe(142); // what the node reports: still true, never lower
    setShard(150);
    expect(seqOf(src, scope)).toBe(151);
  });

  it('reports seqs that never decrease under any arrival order (seeded)', () => {
    let rnd = 12345;
    const next = () => ((rnd = (rnd * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const { src, setMeta, setShard } = source();
    const scope = [accountShardDoc(0)];
    // The shard changes at some seqs; meta and shard updates arrive in random interleavings.
    let shardStamp = 0;
    let last = 0;
    const changes: number[] = [];
    for (let seq = 1; seq <= 500; seq++) {
      if (next() < 0.3) changes.push(seq);
      const lastChange = changes.filter((c) => c <= seq).at(-1) ?? 0;
      if (next() < 0.5) setMeta(seq, lastChange);
      if (next() < 0.5 && lastChange > shardStamp) setShard((shardStamp = lastChange));
      const s = seqOf(src, scope);
      expect(s).toBeGreaterThanOrEqual(last);
      last = s;
    }
  });
});
