// The client's privileged network steps, for the client and its supervisor.
export * from "./ip.js";
export * from "./interfaces.js";
export * from "./selection.js";
export * from "./console.js";
export * from "./hooks.js";
export * from "./routes.js";
export * from "./session.js";
