// A shopping cart as an edge-agent service package (see README, "Deploying
// service code"). The agent calls these exports in a worker thread, with JSON in
// and JSON out; keep them pure functions of their arguments: the same op must
// give the same state on every agent of the session's group.
import { CATALOG } from './catalog.js'

// The state of a new session.
export function initial () {
  return { items: {}, orders: 0 }
}

// Refuses an op before it is logged: return true, or a reason.
export function validate (op) {
  if (op === null || typeof op !== 'object') return 'an op is an object: {"add": {"sku", "qty"}}, {"remove": sku} or {"checkout": true}'
  if ('add' in op) {
    const { sku, qty } = op.add ?? {}
    if (!(sku in CATALOG)) return `unknown sku ${JSON.stringify(sku)} (catalog: ${Object.keys(CATALOG).join(', ')})`
    if (!Number.isInteger(qty) || qty < 1 || qty > 99) return 'qty must be a whole number 1-99'
    return true
  }
  if ('remove' in op) return typeof op.remove === 'string' ? true : 'remove names a sku'
  if ('checkout' in op) return op.checkout === true ? true : 'checkout is {"checkout": true}'
  return 'unknown op (add, remove, checkout)'
}

export function apply (state, op) {
  if (op.add !== undefined) state.items[op.add.sku] = (state.items[op.add.sku] ?? 0) + op.add.qty
  if (op.remove !== undefined) delete state.items[op.remove]
  if (op.checkout === true) {
    if (Object.keys(state.items).length === 0) throw new Error('cannot check out an empty cart')
    state.items = {}
    state.orders++
  }
  return state
}

// A clean point for moving the session to a newer version: an empty cart (a new
// version may change how items are kept).
export function isClean (state) {
  return Object.keys(state.items).length === 0
}

// GET /cart/total (with the session's token) prices the cart; GET /cart/catalog
// lists what can be bought.
export function request (req, state) {
  if (req.path === '/catalog') return { body: CATALOG }
  if (req.path === '/total') {
    if (state === null) return { status: 401, body: { error: 'send the session token: Authorization: Bearer <token>' } }
    let cents = 0
    for (const [sku, qty] of Object.entries(state.items)) cents += CATALOG[sku].cents * qty
    return { body: { items: state.items, totalCents: cents, orders: state.orders } }
  }
  return { status: 404, body: { error: `no route ${req.method} ${req.path} (try /catalog or /total)` } }
}
