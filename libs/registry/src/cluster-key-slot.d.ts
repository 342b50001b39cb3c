// cluster-key-slot (the slot function ioredis uses) ships no types. CommonJS: `module.exports`
// is the function, so it is imported as the default.
declare module 'cluster-key-slot' {
  /** The Redis Cluster slot (0..16383) of a key, honouring its `{hash tag}`. */
  function calculateSlot(key: string | Buffer): number;
  // eslint-disable-next-line import-x/no-default-export -- describes a CommonJS module's export
  export default calculateSlot;
}
