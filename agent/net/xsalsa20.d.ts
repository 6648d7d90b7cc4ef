// Types for `xsalsa20` (the XSalsa20 stream cipher @libp2p/pnet uses), which
// ships none: agent/net/keyring.ts uses these three calls.
declare module 'xsalsa20' {
  interface XSalsa20 {
    // XORs the next input.length bytes of the key stream into a new array.
    update (input: Uint8Array, output?: Uint8Array): Uint8Array
    // Frees the cipher's slot in the WebAssembly memory; no update after it.
    finalize (): void
  }
  function XSalsa20 (nonce: Uint8Array, key: Uint8Array): XSalsa20
  export default XSalsa20
}
