// Processes that hold passwords or private keys must not write them into
// core files, nor let another process of the same user read their memory:
// no core size, and not dumpable (which also forbids ptrace by non-root).
import { describeErrno, libcFunctions } from "./libc.js";

const RLIMIT_CORE = 4;
const PR_SET_DUMPABLE = 4;

const libc = libcFunctions({
  setrlimit: "int setrlimit(int resource, const void *rlim)",
  prctl: "int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)",
});

/** Throws with a one-line reason if either step fails. */
export function protectMemory(): void {
  const c = libc();
  // struct rlimit { rlim_t cur, max; } on 64-bit Linux: two zeroes.
  if (c.setrlimit(RLIMIT_CORE, Buffer.alloc(16)) !== 0) {
    throw new Error(`cannot disable core dumps: ${describeErrno(c.errno())}`);
  }
  if (c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) !== 0) {
    throw new Error(`cannot make the process undumpable: ${describeErrno(c.errno())}`);
  }
}
