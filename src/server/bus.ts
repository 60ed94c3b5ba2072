// Joining the system bus: publish the objects, then take the names
// se.recompile.Mandos (required) and se.bsnet.fukt.Mandos (old, optional).
// If the bus or the name is not available, the server goes on without
// D-Bus, as Mandos does ("Disabling D-Bus").
import { NameFlag, RequestNameReply, systemBus, type MessageBus } from "dbus-next";
import type { Logger } from "../cli/log.js";
import { BUS_NAME, MandosDBus, OLD_BUS_NAME } from "./dbus-api.js";
import { DBusService, DBUS_ERRORS, ServiceError } from "./dbus-service.js";
import type { MandosServer } from "./server.js";
import { StateSaveError } from "./state-writer.js";

export interface BusHandle {
  bus: MessageBus;
  dbus: MandosDBus;
  close(): void;
}

function connected(bus: MessageBus, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no answer from the bus")), timeoutMs);
    bus.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    bus.once("error", (err: unknown) => {
      clearTimeout(timer);
      reject(err instanceof Error ? err : new Error(String(err)));
    });
  });
}

/** A change is acknowledged only once saved; a failed save is the caller's error (already logged once). */
function durable(server: MandosServer, objectPath: string): Promise<void> {
  return server.flushed(objectPath).catch((err: unknown) => {
    // A fleet's store says itself what became of the change.
    const note = err instanceof StateSaveError ? " (the change is in effect but not saved)" : "";
    throw new ServiceError(DBUS_ERRORS.failed, `${(err as Error).message}${note}`);
  });
}

export async function joinBus(server: MandosServer, log: Logger, timeoutMs = 10_000): Promise<BusHandle | null> {
  let bus: MessageBus;
  try {
    bus = systemBus();
    await connected(bus, timeoutMs);
  } catch (err) {
    log.error(`Disabling D-Bus: cannot connect to the system bus: ${(err as Error).message}`);
    return null;
  }
  let lost = false;
  bus.on("error", (err: unknown) => {
    if (lost) return;
    lost = true;
    server.detachDBus();
    log.error(`D-Bus connection lost: ${(err as Error)?.message ?? String(err)}`);
  });
  const service = new DBusService(bus, (msg) => log.warning(msg), (path) => durable(server, path));
  const dbus = new MandosDBus(service, server);
  try {
    const reply = await bus.requestName(BUS_NAME, NameFlag.DO_NOT_QUEUE);
    if (reply !== RequestNameReply.PRIMARY_OWNER) throw new Error(`the name ${BUS_NAME} is taken`);
  } catch (err) {
    log.error(`Disabling D-Bus: ${(err as Error).message}`);
    service.close();
    bus.disconnect();
    return null;
  }
  try {
    const reply = await bus.requestName(OLD_BUS_NAME, NameFlag.DO_NOT_QUEUE);
    if (reply !== RequestNameReply.PRIMARY_OWNER) log.warning(`the old D-Bus name ${OLD_BUS_NAME} is taken`);
  } catch (err) {
    log.warning(`cannot own the old D-Bus name ${OLD_BUS_NAME}: ${(err as Error).message}`);
  }
  server.attachDBus(dbus);
  return {
    bus,
    dbus,
    close: () => {
      server.detachDBus();
      service.close();
      try {
        bus.disconnect();
      } catch {
        // already gone
      }
    },
  };
}
