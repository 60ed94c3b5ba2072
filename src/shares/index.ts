export * from "./format.js";
export * from "./shamir.js";
export * from "./collect.js";
