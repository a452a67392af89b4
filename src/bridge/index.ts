// The bridge to consumers in another process: protocol messages, framing and the server.
export * from './protocol.js';
export { LineSplitter } from './framing.js';
export { BridgeServer, type BridgeBatch, type BridgeLoader, type BridgeServerOptions, type BridgeOutcome, type CloseReason } from './server.js';
