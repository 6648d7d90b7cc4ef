// Every limit the decoders enforce, in one place, each with its reason.
// A frame or field beyond a limit is refused, never truncated.

// Peer ids are base58btc multihashes (an Ed25519 id is 52 characters); the margin
// leaves room for other key types without admitting unbounded strings.
export const MAX_ID_CHARS = 128
// Listen addresses a node may advertise, and the length of one multiaddr string.
export const MAX_ADDRS = 16
export const MAX_ADDR_CHARS = 256
// IPv6 text form is at most 45 characters.
export const MAX_IP_CHARS = 45
// The advertised HTTP URL of an agent.
export const MAX_URL_CHARS = 256
export const MAX_SERVICES = 64
export const MAX_SERVICE_NAME_CHARS = 64
export const MAX_SERVICE_VERSION_CHARS = 32
export const MAX_SERVICE_CAPACITY = 1_000_000
export const MAX_SESSIONS = 100_000_000
export const MAX_REGION_CHARS = 64
// Ed25519 signatures are 64 bytes; other key types (RSA) would need more, but the
// agent only issues Ed25519 identities.
export const MAX_SIG_BYTES = 128
// One encoded record: 16 addresses of 256 characters plus 64 services stay below it.
export const MAX_RECORD_BYTES = 16 * 1024
export const MAX_ACCUSATION_BYTES = 512
// Updates piggybacked on one probe message or carried by one gossip message.
export const MAX_UPDATES = 256
// Entries in one push-pull message or peek reply: far beyond the 10,000 nodes the
// simulator is sized for, still bounded.
export const MAX_ENTRIES = 65_536
// Frame limits per message type, in bytes, checked before any parsing.
export const MAX_PROBE_FRAME_BYTES = 256 * 1024
export const MAX_SMALL_FRAME_BYTES = 256
export const MAX_GOSSIP_FRAME_BYTES = 1024 * 1024
export const MAX_TABLE_FRAME_BYTES = 32 * 1024 * 1024
// The largest frame any stream reader accepts; equal to the largest per-type limit.
export const MAX_FRAME_BYTES = MAX_TABLE_FRAME_BYTES

// ---- sessions ----
// Session ids and terminal ids: printable tokens, not prose.
export const MAX_SESSION_ID_CHARS = 128
export const MAX_TERMINAL_ID_CHARS = 128
// One op, as JSON text. A state delta, not a file upload.
export const MAX_OP_BYTES = 64 * 1024
// A batch of deltas in one request (POST …/deltas with "ops"): at most this many
// ops, and this many bytes of request body (each op still at most MAX_OP_BYTES).
// A batch travels to each standby in append frames of maxBatchEntries (512).
export const MAX_BATCH_OPS = 1_000
export const MAX_BATCH_BYTES = 1024 * 1024
// A session's service state, as JSON text, at snapshot time; it travels whole in
// a snapshot frame, so it must stay well below MAX_TABLE_FRAME_BYTES.
export const MAX_STATE_BYTES = 16 * 1024 * 1024
// Entries in one append or vote tail: appends are batched up to this.
export const MAX_SESSION_ENTRIES = 4_096
// Members of a group (owner + standbys).
export const MAX_GROUP_MEMBERS = 16
// Recent client sequence numbers remembered for idempotent retries.
export const MAX_DEDUP_RECENT = 256
// JSON nesting depth accepted in ops and state.
export const MAX_JSON_DEPTH = 64
export const MAX_REASON_CHARS = 512
export const MAX_SESSION_FRAME_BYTES = 32 * 1024 * 1024
// Frame limit of the session messages made of ids and varints only (append-ack,
// vote-request, locate, diagnose, diagnosis). The largest, a vote-request with
// 128-character ids and 8-byte varints, takes 295 bytes.
export const MAX_SESSION_CONTROL_FRAME_BYTES = 512
// Frame limit of session-open, -opened and -location: they carry a group (16 member
// ids and a witness of 128 characters: 2,212 bytes) and -opened a 512-character
// reason. The largest, a session-opened, takes 2,876 bytes.
export const MAX_SESSION_GROUP_FRAME_BYTES = 4 * 1024

// ---- service packages ----
// A signed package bundle (agent/runtime/package.ts): a service's code, not its
// data. 4 MiB of compressed code is a large program; a bundle travels whole in
// one frame of the packages protocol.
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024
// One frame of the packages protocol: a bundle plus a few bytes of framing, or an
// index of announcements (at most MAX_SERVICES of 4 KiB each).
export const MAX_PACKAGE_FRAME_BYTES = MAX_BUNDLE_BYTES + 64 * 1024
