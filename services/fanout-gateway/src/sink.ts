/** Where a frame leaves its channel: SSE puts it into the event id, so `Last-Event-ID` resumes there. */
export interface FramePosition {
  readonly channel: string;
  readonly offset: string;
  readonly epoch: string;
  /**
   * On an event: the frame's text, in an object shared by every socket of the channel on this
   * node, so a transport may encode it once (see ws-frame.ts `sharedTextFrame`).
   */
  readonly frame?: string;
  /** `frame`'s UTF-8 bytes, when whoever made the frame has them already (feed frames: feed.ts). */
  readonly bytes?: Buffer;
  /**
   * Set on an event the gateway read from history (a resume's replay, a gap fill, a catch-up):
   * up to the history limit of them are written at once, so a transport may hold them until the
   * peer reads rather than count them against its slow-consumer bound (`bufferedAmount`; the
   * WebSocket and SSE transports do, pending-frames.ts).
   */
  readonly fromHistory?: true;
}

/** Set on a frame that ends a channel's subscription (`unsubscribed`): SSE drops it from the event id. */
export interface ChannelEnded {
  readonly channel: string;
  readonly ended: true;
}

/**
 * What the connection lifecycle needs from a transport (WebSocket, SSE, …). Adding a transport
 * means implementing this and calling `ConnectionLifecycle` from its route.
 */
export interface ConnectionSink {
  /**
   * Sends one server frame: `op` names it, `text` is its JSON; `position` is set on frames that
   * move a channel's position (ack, event, gap) or end it (unsubscribed, `ChannelEnded`).
   */
  send(op: string, text: string, position?: FramePosition | ChannelEnded): void;
  /**
   * Bytes queued for the peer and not yet written (the slow-consumer check), leaving out events
   * from history (`fromHistory`) the transport holds back until the peer has read what is before
   * them, while they are at most one replay's worth (the history limit's frames).
   */
  bufferedAmount(): number;
  /**
   * Resolves once no event from history (`fromHistory`) is held back any more: each was handed to
   * the socket or stream, or dropped because the transport closed; at once when none is (a
   * transport that holds nothing back always resolves at once). A subscribe with `since` waits
   * for it before it reads its replay (session.ts), so a connection holds one replay's worth at a
   * time however many channels it resumes. Never rejects.
   */
  historyHandedOver(): Promise<void>;
  /**
   * Ends the transport. `code` is a WebSocket close code (docs/protocol.md), `reason` its reason;
   * a transport without close codes reports them its own way. Called at most once per lifecycle.
   */
  close(code: number, reason: string): void;
}
