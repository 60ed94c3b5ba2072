// Zeroconf (DNS-SD over mDNS) for Mandos: browse for servers (client),
// announce the service (server).
export { browse } from "./browse.js";
export { announce } from "./announce.js";
export { DEFAULT_SERVICE_NAME, DEFAULT_SERVICE_TYPE, alternativeServiceName } from "./names.js";
export type {
  AnnounceOptions,
  AnnounceProtocol,
  Announcement,
  BrowseOptions,
  Browser,
  FoundService,
  IpProtocol,
} from "./types.js";
