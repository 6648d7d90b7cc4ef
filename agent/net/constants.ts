// Every limit and default of the libp2p transport, in one place, each with its unit
// and its reason (shared/style.md §4). Frame limits themselves live in
// protocol/limits.ts; the values here size queues, streams and libp2p's own knobs.

import { MAX_GOSSIP_FRAME_BYTES } from '../../protocol/limits.ts'

// Cluster names become part of protocol ids and the topic; multistream-select
// separates protocol ids with newlines, so the name is kept to a safe alphabet.
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export function directProtocol (cluster: string): string {
  return `/edge-agent/${cluster}/swim/1.0.0`
}

// Session replication has its own stream per peer: a large append batch or a
// snapshot must never delay a membership probe behind it on the same stream.
export function replicationProtocol (cluster: string): string {
  return `/edge-agent/${cluster}/replicate/1.0.0`
}

// Service packages (deploy, fetch, index): one request and answer per stream.
export function packagesProtocol (cluster: string): string {
  return `/edge-agent/${cluster}/packages/1.0.0`
}

export function peekProtocol (cluster: string): string {
  return `/edge-agent/${cluster}/peek/1.0.0`
}

export function gossipTopic (cluster: string): string {
  return `edge-agent/${cluster}/membership/1`
}

// --- direct protocol ------------------------------------------------------------

// Frames waiting for one peer's stream. SWIM sends a handful of frames per probe
// period to a peer, so a full queue means the peer has stopped reading (frozen,
// overloaded): later frames are dropped and counted instead of growing memory.
export const SEND_QUEUE_MAX_FRAMES = 1024
// Bytes waiting for one peer's stream. A frame into an empty queue is always
// accepted, so one table frame (up to MAX_TABLE_FRAME_BYTES) still goes out.
export const SEND_QUEUE_MAX_BYTES = 8 * 1024 * 1024
// Encoded frames handed to the muxer in one write: batching cuts yamux frames and
// syscalls when probes pile up, and stays far below the 256 KiB initial window.
export const SEND_BATCH_MAX_BYTES = 64 * 1024
// A stream whose sink has not taken a queued frame for this long (or the dial
// timeout, if longer) is treated as stalled (a frozen peer holds the TCP
// connection open but grants no yamux window): it is aborted and reported.
export const WRITE_STALL_MIN_MS = 2_000
// Sessions channel: after a failed dial (refused, timed out) a peer is not
// dialled again for this long, doubling with each failure in a row up to the
// maximum: frames sent to it meanwhile are dropped (edge_agent_redial_held_total)
// instead of each starting a dial of its own. A machine whose agent crashed
// refuses at once, so every send was a dial: a candidate's vote requests every
// 25 ms and a new owner's heartbeats and appends, for every session, from every
// survivor at once, while those survivors most need the CPU
// (bench/takeover-timeline.ts counted ~10 refused dials per survivor in the
// 400 ms after a SIGKILL). The failure is reported once, when the dial fails. A
// peer that connects to us, whose record brings its addresses again (it
// restarted), or that a group asks to connect to is dialled at once. The
// membership channel has no backoff: SWIM sends a dead peer a few frames a
// second, and a probe must learn at once that its target refused.
export const REDIAL_BACKOFF_MIN_MS = 250
export const REDIAL_BACKOFF_MAX_MS = 2_000
// The slowest peer still considered alive, bytes per second: the stall allowance
// grows by the time the last batch needs at this rate, so a 32 MiB table frame on
// a slow link (32 s at 1 MiB/s) is not mistaken for a frozen peer.
export const WRITE_STALL_MIN_BYTES_PER_S = 1024 * 1024
// Streams per connection and direction on the direct protocol. A peer normally
// keeps one long-lived stream each way; the margin covers streams being replaced
// after a reset. libp2p's registrar default would be 32 in, 64 out.
export const DIRECT_MAX_STREAMS = 64

// --- limits per peer, inbound (each refusal is counted: edge_agent_limit_exceeded_total) ---

// Inbound streams one peer may hold open at once on one protocol (membership or
// replication), across all its connections. An honest peer keeps one; the margin
// covers streams being replaced after a reset. A stream beyond it is reset.
export const MAX_INBOUND_STREAMS_PER_PEER = 16
// Frames one peer may send per second on the membership stream (sustained rate and
// burst). SWIM sends a peer a handful per probe period, push-pull one exchange per
// period; even a 10,000-node cluster's indirect probes stay far below. Frames over
// it are dropped (SWIM treats them as lost) and counted.
export const MEMBERSHIP_FRAMES_PER_PEER = { ratePerS: 2_000, burst: 4_000 }
// Frames one peer may send per second on the replication stream. An owner sends a
// member one append batch per session per event-loop turn, plus heartbeats; 20,000
// frames/s is several thousand busy sessions' worth. Frames over it are dropped
// (the owner resends what a member has not acknowledged) and counted.
export const SESSION_FRAMES_PER_PEER = { ratePerS: 20_000, burst: 40_000 }
// Gossip messages one neighbour may forward to us per second (any origin). Over
// it, messages are ignored (not penalised: the neighbour may only be relaying).
export const GOSSIP_MESSAGES_PER_PEER = { ratePerS: 1_000, burst: 2_000 }
// Peers tracked for the limits above; beyond it idle entries are dropped.
export const RATE_TRACKED_PEERS = 10_000

// --- peek protocol --------------------------------------------------------------

// A peek client opens one stream per request; a few in parallel is plenty.
export const PEEK_MAX_STREAMS = 8
// A peek reply (up to 32 MiB) must be taken by the client within this time,
// so a stuck client cannot pin the encoded table in memory.
export const PEEK_SERVE_TIMEOUT_MS = 30_000

// --- packages protocol ----------------------------------------------------------

// Package requests per connection and direction: a deploy pushes one bundle to
// each target, a pull or fetch is one stream; a handful in parallel is plenty.
export const REQUEST_MAX_STREAMS = 16
// A request stream (a 4 MiB bundle at the slowest acceptable 1 MiB/s, plus
// margin) is aborted after this long, ms.
export const REQUEST_SERVE_TIMEOUT_MS = 30_000

// --- gossip ---------------------------------------------------------------------

// What surrounds our payload in one gossipsub RPC: the signed message envelope
// (from, seqno, topic, 64-byte signature, protobuf tags: a few hundred bytes) and
// control messages piggybacked on it (IHAVE lists of 5,000 ids at most, ~50 bytes
// each, plus GRAFT/PRUNE/IDONTWANT), so 512 KiB leaves room for both.
export const GOSSIP_RPC_OVERHEAD_BYTES = 512 * 1024
export const GOSSIP_MAX_RPC_BYTES = MAX_GOSSIP_FRAME_BYTES + GOSSIP_RPC_OVERHEAD_BYTES
// Bytes gossipsub may queue for one peer's outbound stream before it drops RPCs
// to that peer (its default is unbounded, which a frozen peer would exploit).
export const GOSSIP_OUTBOUND_BUFFER_BYTES = 8 * 1024 * 1024
// Element counts per decoded RPC. The byte limit above already bounds them; these
// keep one RPC from holding hundreds of thousands of tiny objects. Each is far
// above what an honest peer sends: one topic, a few messages per RPC, IHAVE lists
// capped at 5,000 ids by gossipsub itself, no peer exchange.
export const GOSSIP_DECODE_LIMITS = {
  maxSubscriptions: 64,
  maxMessages: 512,
  maxIhaveMessageIDs: 5_000,
  maxIwantMessageIDs: 5_000,
  maxIdontwantMessageIDs: 5_000,
  maxControlMessages: 64,
  maxPeerInfos: 16
}

// --- libp2p connection management -------------------------------------------------

// A cluster is 10–50 nodes, each holding at most a connection or two to each peer
// (simultaneous dials can leave two). Beyond this libp2p prunes connections.
export const MAX_CONNECTIONS = 300
// New inbound connections per second and per remote IP. libp2p's default of 5 is
// meant for public nodes; a cluster on one machine (tests, the demo) has every
// peer behind 127.0.0.1, and 49 peers redialling after a restart would be refused.
export const INBOUND_CONNECTIONS_PER_HOST_PER_S = 100
// Inbound connections in their handshake at once (libp2p default 10): a whole
// cluster may connect to a restarted node within one probe period.
export const MAX_INCOMING_PENDING_CONNECTIONS = 64
// Upper bound on any dial libp2p performs; each of our dials passes its own,
// usually shorter, AbortSignal.
export const MAX_DIAL_TIMEOUT_MS = 30_000
// libp2p's connection monitor (a /ipfs/ping/1.0.0 stream on every connection
// every interval) and yamux's keep-alive pings (every 30 s per connection) are
// both off. Each cost every connection packets at rest whatever the cluster was
// doing: at 20 agents the monitor alone, once a minute, was ~20 packets and
// ~1.5 kB per connection, about 500 B/s per agent, more than all of SWIM's
// probes. They found nothing SWIM does not: a frozen or vanished peer stops
// answering probes and is declared dead in about 2 s, a stream it stops reading
// is aborted by the write-stall check below (WRITE_STALL_MIN_MS), and the kernel
// closes a connection to a vanished host once data sent on it goes unacknowledged.
export const CONNECTION_MONITOR_ENABLED = false
export const YAMUX_KEEP_ALIVE = false

// --- identity -------------------------------------------------------------------

export const IDENTITY_FILE = 'identity.key'
// Parsed public keys kept for Auth.verify: a 10,000-node cluster fits, and a flood
// of made-up ids only evicts entries instead of growing memory.
export const PUBLIC_KEY_CACHE_ENTRIES = 10_000

// Gossipsub mesh degrees for the membership topic (see libp2p.ts): D peers in the
// mesh, between Dlo and Dhi before grafting or pruning, Dout outbound peers kept,
// Dscore kept by score when pruning.
//
// No IHAVE gossip (Dlazy 0, gossipFactor 0). Gossipsub's lazy gossip repairs a
// message the mesh lost by advertising, every heartbeat (1 s), the ids of the last
// three heartbeats' messages to Dlazy peers outside the mesh. Membership has its
// own repair (suspicions and verdicts ride on probes, push-pull reconciles whole
// tables), and over TCP the mesh loses a message only with a connection. At 20
// agents the advertisements alone were ~1.8 kB/s per agent at rest (ids are 46
// bytes: the publisher's id and a sequence number), more than all of SWIM.
export const GOSSIP_MESH = { D: 3, Dlo: 2, Dhi: 6, Dlazy: 0, gossipFactor: 0, Dout: 1, Dscore: 1 }
// Gossipsub's peer scoring, changed in one place: no penalty for sharing an IP.
// Its default (P6: -5 × (peers on one IP beyond 10)²) guards open networks
// against one host posing as many peers. Here every peer has proven the cluster
// key, and several agents behind one address are normal (NAT, a box running a
// few agents, the simulator's --real clusters on 127.0.0.1). With the default,
// 20 agents on one address scored each other -500: below gossipsub's graylist
// threshold (-80), so none was grafted into a mesh and their messages were
// dropped; a suspicion then reached most members only by IHAVE a heartbeat later,
// too late to count as a confirmation, and each waited out the longest timeout.
export const GOSSIP_SCORE_PARAMS = { IPColocationFactorWeight: 0 }
