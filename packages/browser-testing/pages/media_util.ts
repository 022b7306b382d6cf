/** Sorted kinds of a stream's tracks, e.g. ['audio', 'video']. */
export function trackKinds(stream: MediaStream): string[] {
  return stream
    .getTracks()
    .map((t) => t.kind)
    .sort();
}
