// Node globals Apache Thrift's JavaScript library uses, for the browser bundle (esbuild --inject).
import { Buffer } from "buffer";

export { Buffer };
export const process = { env: {}, browser: true, nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)) };
