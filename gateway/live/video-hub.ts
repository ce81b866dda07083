// Fans each camera's frames out to its viewers, and tells the feed when a camera gains its first viewer or loses
// its last (with Redis that is the video:{camera} subscription the workers look for before encoding frames).
import type { FeedCache } from "../cache.ts";
import type { BusFeed } from "../feed.ts";

export type FrameSink = (jpeg: Buffer) => void;

export class VideoHub {
  private readonly viewers = new Map<string, Set<FrameSink>>();
  private readonly feed: BusFeed;
  private readonly cache: FeedCache;

  constructor(feed: BusFeed, cache: FeedCache) {
    this.feed = feed;
    this.cache = cache;
    feed.on({
      frame: (id, jpeg) => {
        const sinks = this.viewers.get(id);
        if (!sinks) return;
        for (const sink of sinks)
          try {
            sink(jpeg);
          } catch {
            // one viewer's broken socket is its own problem
          }
      },
    });
  }

  /** Adds a viewer; it gets the cached frame at once when one is fresh. Returns the function that removes it. */
  join(cameraId: string, sink: FrameSink): () => void {
    let sinks = this.viewers.get(cameraId);
    if (!sinks) {
      sinks = new Set();
      this.viewers.set(cameraId, sinks);
      this.feed.watch(cameraId, true);
    }
    sinks.add(sink);
    const latest = this.cache.frame(cameraId);
    if (latest) sink(latest);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const s = this.viewers.get(cameraId);
      if (!s) return;
      s.delete(sink);
      if (s.size === 0) {
        this.viewers.delete(cameraId);
        this.feed.watch(cameraId, false);
        this.cache.forgetFrame(cameraId);
      }
    };
  }

  viewerCount(cameraId: string): number {
    return this.viewers.get(cameraId)?.size ?? 0;
  }
}
