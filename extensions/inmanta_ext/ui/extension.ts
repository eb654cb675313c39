/**
 * The web console, served as an extension the way Inmanta ships inmanta-ui: a single page at
 * `/console/` (`/` redirects there) that shows the server from its public API only.
 *
 * @module
 */
import { type ApplicationContext, ServerSlice } from "@inmanta/server";

/** Serves the console's static files; it has no endpoints of its own. */
export class ConsoleSlice extends ServerSlice {
  /** @param name the slice's name */
  constructor(name: string) {
    super(name);
    // Declared here, not in prestart: locations declared at registration are owned in
    // registration order, so no extension enabled after this one can take /console. As
    // inmanta-ui: `/` redirects to the console, and its client-side paths answer its page.
    this.addStaticHandler("/console", new URL("./static/", import.meta.url), "index.html", true, {
      fallback: true,
    });
  }

  override getDependencies(): string[] {
    return ["core.server"];
  }

  /** As in Inmanta: the listener opens only once this slice serves. */
  override getDependedBy(): string[] {
    return ["core.transport"];
  }
}

/** Registers the console slice. */
export function setup(application: ApplicationContext): void {
  application.registerSlice(new ConsoleSlice("ui.console"));
}
