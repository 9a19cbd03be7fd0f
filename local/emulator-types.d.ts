// The emulators ship no type declarations; these cover only what local/ uses.
declare module 'dynalite' {
  import type { Server } from 'node:http';
  interface DynaliteOptions { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number; path?: string }
  function dynalite(options?: DynaliteOptions): Server;
  export default dynalite;
}
declare module 'kinesalite' {
  import type { Server } from 'node:http';
  interface KinesaliteOptions { createStreamMs?: number; deleteStreamMs?: number; updateStreamMs?: number; shardLimit?: number; path?: string }
  function kinesalite(options?: KinesaliteOptions): Server;
  export default kinesalite;
}
declare module 's3rver' {
  import type { AddressInfo } from 'node:net';
  interface S3rverOptions { port?: number; address?: string; silent?: boolean; directory: string; resetOnClose?: boolean; configureBuckets?: { name: string }[] }
  class S3rver {
    constructor(options: S3rverOptions);
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
  }
  export default S3rver;
}
