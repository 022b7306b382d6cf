// Bundled by test/browser.test.ts: proves a bundle (with an import) runs in the page and the
// fake camera/microphone work in a secure context.
import { trackKinds } from './media_util.js';

export async function fakeMedia(): Promise<{ kinds: string[]; secure: boolean }> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const kinds = trackKinds(stream);
  stream.getTracks().forEach((t) => t.stop());
  return { kinds, secure: window.isSecureContext };
}
