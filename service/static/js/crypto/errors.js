// The one error class for every failure to open anything (slot, item, file
// stream, wrapped key, padding, ids, lengths, versions). The message is
// deliberately generic: no detail about what failed leaks to callers.
export class OpenError extends Error {
  constructor() {
    super("could not open");
    this.name = "OpenError";
  }
}
