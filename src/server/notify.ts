// systemd readiness (sd_notify): "READY=1" once the socket listens, the
// clients are loaded and D-Bus is up; "STOPPING=1" on the way out. Mandos
// itself only lists this on its TODO; with Type=notify, systemd starts
// whatever depends on mandos.service only when the server really serves.
import { sendDatagram } from "../sys/unix-dgram.js";

export type Notifier = (state: string) => void;

/** A notifier for $NOTIFY_SOCKET, or a no-op when not started by systemd. */
export function systemdNotifier(onError: (msg: string) => void, env = process.env): Notifier {
  const socket = env.NOTIFY_SOCKET;
  // Children (checkers) must not talk to systemd in our name.
  delete env.NOTIFY_SOCKET;
  if (!socket) return () => {};
  return (state) => {
    try {
      sendDatagram(socket, Buffer.from(state));
    } catch (err) {
      onError(`sd_notify: ${(err as Error).message}`);
    }
  };
}
