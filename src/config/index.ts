// Reading Mandos 1.8's configuration: mandos.conf, clients.conf, durations
// and checker commands. See man/mandos.conf.5 and man/mandos-clients.conf.5.
export {
  parseClientsConf,
  loadClientsConf,
  CLIENT_DEFAULTS,
  type ClientConfig,
  type ClientsConfResult,
  type ClientsConfOptions,
} from "./clients.js";
export {
  parseServerConf,
  loadServerConf,
  overlayServerConfig,
  SERVER_DEFAULTS,
  DEFAULT_PRIORITY,
  MAX_CONNECTIONS,
  type ServerConfig,
  type HostPort,
} from "./server.js";
export { parseDuration, formatDuration, DurationError } from "./duration.js";
export {
  expandChecker,
  validateCheckerTemplate,
  checkerAttributes,
  shellQuote,
  pythonTimedelta,
  pythonDatetime,
  RUNTIME_EXPANSIONS,
  CheckerTemplateError,
  type CheckerValue,
  type CheckerClientState,
} from "./checker.js";
export { ConfigError } from "./errors.js";
export {
  parseIni,
  interpolate,
  parseBoolean,
  InterpolationError,
  DEFAULT_SECTION,
  type IniDocument,
  type IniSection,
  type IniOption,
  type IniIssue,
} from "./configparser.js";
export { expandVars, expandUser, type Environment, type HomeDirLookup } from "./pathexpand.js";
