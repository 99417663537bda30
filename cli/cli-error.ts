/** A user-facing CLI failure: printed as one message, exit status 2, no stack trace. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CliError";
  }
}
