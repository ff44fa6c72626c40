// The start-up role decision of a core node (who leads, who follows), as functions over what they
// need: the local log, the configured node order, and a way to ask the peer for its status.
//   peer is primary                                 → standby
//   peer is starting (or a standby never caught up) → the most advanced log (lastEpoch, seq) leads,
//                                                     ties go to config order
//   peer unreachable                                → primary only if this is the first node of an
//                                                     empty cluster, or forcePrimary; else wait
// Invariants: only an empty log on the first configured node (or the operator's --force-primary)
// bootstraps without hearing from the peer; a new primary's epoch is above every epoch this log has
// seen (currentEpoch + 1), except a single-node cluster, which keeps max(1, currentEpoch).
import type { Logger } from 'pino';
import type { CommandLog } from '../log/command-log.js';

export type CoreRole = 'starting' | 'primary' | 'standby' | 'halted';

/** What a core node's /v1/status says about it (the fields the election reads). */
export interface PeerStatus {
  role: CoreRole;
  node: string;
  epoch: number;
  seq: number;
  lastEpoch: number;
  caughtUp?: boolean;
}

export type ElectionOutcome = { role: 'primary'; epoch: number } | { role: 'standby' };

export interface ElectionInputs {
  log: CommandLog;
  nodeName: string;
  /** Config order of the core nodes (ties go to the earlier one). */
  nodeOrder: readonly string[];
  /** The peer's URL (null: single-node cluster). Read at every round, it may be set late. */
  peerUrl: () => string | null;
  /** Asks the peer for its status; null if it can't be reached. */
  peerStatus: () => Promise<PeerStatus | null>;
  /** Pause between rounds while waiting for the peer. */
  retryMs: number;
  forcePrimary?: boolean;
  /** True once the node is closing: the election gives up (resolves null). */
  closed: () => boolean;
  logger?: Logger;
}

/** Decides this node's role; resolves null if the node closed while waiting for its peer. */
export async function elect(inputs: ElectionInputs): Promise<ElectionOutcome | null> {
  const { log } = inputs;
  if (inputs.peerUrl() === null) return { role: 'primary', epoch: Math.max(1, log.currentEpoch()) };
  const isFirst = inputs.nodeOrder[0] === inputs.nodeName;
  let warned = false;
  while (!inputs.closed()) {
    const peer = await inputs.peerStatus();
    if (peer?.role === 'primary') return { role: 'standby' };
    if (peer && (peer.role === 'starting' || (peer.role === 'standby' && !peer.caughtUp)) && outranks(log, inputs.nodeName, inputs.nodeOrder, peer)) {
      return { role: 'primary', epoch: log.currentEpoch() + 1 };
    }
    if (!peer && ((log.lastSeq() === 0 && log.currentEpoch() === 0 && isFirst) || inputs.forcePrimary)) {
      return { role: 'primary', epoch: log.currentEpoch() + 1 };
    }
    if (!peer && !warned) {
      warned = true;
      inputs.logger?.warn({ peer: inputs.peerUrl() }, 'peer core unreachable: waiting for it (start with --force-primary if it is gone for good)');
    }
    await new Promise((r) => setTimeout(r, inputs.retryMs));
  }
  return null;
}

/** Most advanced log wins; ties go to config order. */
export function outranks(log: CommandLog, nodeName: string, nodeOrder: readonly string[], peer: PeerStatus): boolean {
  const mine = [log.lastEpoch(), log.lastSeq()] as const;
  const theirs = [peer.lastEpoch, peer.seq] as const;
  if (mine[0] !== theirs[0]) return mine[0] > theirs[0];
  if (mine[1] !== theirs[1]) return mine[1] > theirs[1];
  return nodeOrder.indexOf(nodeName) < nodeOrder.indexOf(peer.node);
}

/** GET <peerUrl>/v1/status with a timeout; null when unreachable or not JSON. */
export async function fetchPeerStatus(peerUrl: string | null, timeoutMs: number): Promise<PeerStatus | null> {
  if (!peerUrl) return null;
  try {
    const res = await fetch(`${peerUrl}/v1/status`, { signal: AbortSignal.timeout(timeoutMs) });
    return (await res.json()) as PeerStatus;
  } catch {
    return null;
  }
}
