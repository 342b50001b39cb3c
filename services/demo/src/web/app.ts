// The demo page's script (bundled for the browser by bundle.ts): everything live goes through
// @ripple/client; REST calls go to the domain services through the demo's /api/* routes.
import { createClient } from '@ripple/client';
import type { AnyEvent, RippleClient, Subscription } from '@ripple/client';

const $ = (id: string): HTMLElement => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} missing`);
  return element;
};
/** A form field (input or textarea) by id. */
const field = (id: string): HTMLInputElement => $(id) as HTMLInputElement;
const TYPING_SHOWN_MS = 3000;
const TYPING_SENT_EVERY_MS = 2000;

let me = '';
let token = '';

async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const response = await fetch(`/api/${path}`, {
    method: init.method ?? 'GET',
    headers: {
      authorization: `Bearer ${token}`,
      ...(init.body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
  });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return (await response.json()) as T;
}

async function freshToken(): Promise<string> {
  const body = (await (await fetch(`/api/token?user=${encodeURIComponent(me)}`)).json()) as { token: string };
  token = body.token;
  return token;
}

function item(testId: string, text: string, data: Record<string, string>): HTMLLIElement {
  const li = document.createElement('li');
  li.dataset.testid = testId;
  for (const [key, value] of Object.entries(data)) li.dataset[key] = value;
  const span = document.createElement('span');
  span.className = 'text';
  span.textContent = text;
  li.append(span);
  return li;
}

// ---- creator feed -------------------------------------------------------------------------

interface PostView {
  id: string;
  authorId: string;
  body: string;
}
let feedSub: Subscription | undefined;

function postItem(post: PostView): HTMLLIElement {
  const li = item('post', `${post.authorId}: ${post.body}`, { postId: post.id });
  const form = document.createElement('form');
  form.innerHTML = '<input placeholder="Comment" required /> <button>Comment</button>';
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const input = form.querySelector('input');
    if (!input) return;
    void api(`posts/posts/${post.id}/comments`, { method: 'POST', body: { body: input.value } });
    input.value = '';
  });
  li.append(form);
  return li;
}

function showPost(post: PostView, where: 'top' | 'bottom'): void {
  const feed = $('feed');
  if (feed.querySelector(`[data-post-id="${post.id}"]`)) return; // a REST page and live events overlap
  if (where === 'top') feed.prepend(postItem(post));
  else feed.append(postItem(post));
}

async function loadFeed(creator: string): Promise<void> {
  const page = await api<{ items: PostView[] }>(`posts/users/${creator}/posts?limit=20`);
  for (const post of page.items) showPost(post, 'bottom');
}

function follow(client: RippleClient, creator: string): void {
  feedSub?.unsubscribe();
  $('feed').replaceChildren();
  const following = $('following');
  following.textContent = creator;
  delete following.dataset.live; // set once the gateway acknowledged the subscription (and its position)
  let live = 0;
  $('live-count').textContent = '0';
  const onEvent = (event: AnyEvent): void => {
    $('live-count').textContent = String(++live);
    if (event.type === 'post.created') {
      showPost({ id: event.data.postId, authorId: event.data.authorId, body: event.data.body }, 'top');
    } else if (event.type === 'post.deleted') {
      document.querySelector(`[data-post-id="${event.data.postId}"]`)?.remove();
    }
  };
  // A gap means missed events: the REST page is the truth again.
  const sub = client.subscribe(`creator:${creator}`, { onEvent, onGap: () => void loadFeed(creator) });
  feedSub = sub;
  void sub.ready.then(() => {
    if (feedSub === sub) following.dataset.live = 'true';
    return loadFeed(creator);
  });
}

// ---- notification badge and own channel ---------------------------------------------------

// The REST answer and the live events race: the count of the highest generation seen wins.
let badgeGeneration = -1;
function showBadge(count: number, generation: number | undefined): void {
  // An event without a generation predates them: shown as it comes.
  if (generation !== undefined && generation < badgeGeneration) return;
  badgeGeneration = generation ?? badgeGeneration;
  $('badge').textContent = String(count);
}

async function refreshBadge(): Promise<void> {
  const { count, generation } = await api<{ count: number; generation: number }>(
    'notifications/notifications/unread-count',
  );
  showBadge(count, generation);
}

// ---- chat room ------------------------------------------------------------------------------

interface MessageView {
  id: string;
  senderId: string;
  body: string;
}
let roomSub: Subscription | undefined;
let typingTimer: ReturnType<typeof setTimeout> | undefined;
let lastTypingSent = 0;
let roomId = '';

function showMessage(message: MessageView): void {
  const list = $('messages');
  if (list.querySelector(`[data-message-id="${message.id}"]`)) return;
  const li = item('message', `${message.senderId}: ${message.body}`, { messageId: message.id });
  const receipt = document.createElement('span');
  receipt.className = 'muted receipt';
  receipt.dataset.testid = 'receipt';
  li.append(' ', receipt);
  list.append(li);
  if (message.senderId !== me) {
    void api(`chat/rooms/${roomId}/read`, { method: 'POST', body: { messageId: message.id } });
  }
}

function openRoom(client: RippleClient, id: string, name: string): void {
  if (roomId === id) return;
  roomSub?.unsubscribe();
  roomId = id;
  $('room').hidden = false;
  $('room-name').textContent = name;
  $('messages').replaceChildren();
  const load = async (): Promise<void> => {
    const page = await api<{ items: MessageView[] }>(`chat/rooms/${id}/messages?limit=50`);
    for (const message of page.items.reverse()) showMessage(message);
  };
  roomSub = client.subscribe(`chat:${id}`, {
    onEvent: (event) => {
      if (event.type === 'chat.message.sent') {
        showMessage({ id: event.data.messageId, senderId: event.data.senderId, body: event.data.body });
      } else if (event.type === 'chat.typing' && event.data.userId !== me) {
        $('typing').textContent = `${event.data.userId} is typing…`;
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => ($('typing').textContent = ''), TYPING_SHOWN_MS);
      } else if (event.type === 'chat.read' && event.data.userId !== me) {
        const receipt = document.querySelector(`[data-message-id="${event.data.messageId}"] .receipt`);
        if (receipt) receipt.textContent = `✓ seen by ${event.data.userId}`;
      }
    },
    onGap: () => void load(),
  });
  void roomSub.ready.then(load);
}

// ---- start ---------------------------------------------------------------------------------

async function start(user: string): Promise<void> {
  me = user;
  const { gatewayUrl } = (await (await fetch('/api/config')).json()) as { gatewayUrl: string };
  await freshToken();
  const client = createClient({
    url: gatewayUrl,
    getToken: freshToken,
    getSubscriptionToken: async (channel) =>
      (await api<{ token: string }>(`chat/rooms/${channel.slice('chat:'.length)}/subscription-token`)).token,
  });
  client.on('state', (state) => ($('state').textContent = state));
  $('state').textContent = client.state;
  $('me').textContent = me;
  $('signin').hidden = true;
  $('app').hidden = false;

  client.subscribe(`user:${me}`, {
    onEvent: (event) => {
      if (event.type === 'notification.unread_count') showBadge(event.data.count, event.data.generation);
      if (event.type === 'chat.room.created') openRoom(client, event.data.roomId, event.data.name);
    },
    onGap: () => void refreshBadge(),
  });
  void refreshBadge();
  follow(client, me);

  $('follow').addEventListener('submit', (e) => {
    e.preventDefault();
    follow(client, field('creator').value);
  });
  $('compose').addEventListener('submit', (e) => {
    e.preventDefault();
    const body = field('post-body');
    void api('posts/posts', { method: 'POST', body: { body: body.value } });
    body.value = '';
  });
  $('start-chat').addEventListener('submit', (e) => {
    e.preventDefault();
    const other = field('chat-with').value;
    void api<{ id: string; name: string }>('chat/rooms', {
      method: 'POST',
      body: { name: `${me} & ${other}`, memberIds: [other] },
    }).then((room) => openRoom(client, room.id, room.name));
  });
  $('message').addEventListener('input', () => {
    if (Date.now() - lastTypingSent < TYPING_SENT_EVERY_MS) return;
    lastTypingSent = Date.now();
    void api(`chat/rooms/${roomId}/typing`, { method: 'POST' }).catch(() => undefined); // 429: throttled
  });
  $('say').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = field('message');
    void api(`chat/rooms/${roomId}/messages`, { method: 'POST', body: { body: input.value } });
    input.value = '';
  });
}

$('signin').addEventListener('submit', (e) => {
  e.preventDefault();
  void start(field('user').value);
});
const preset = new URLSearchParams(location.search).get('user');
if (preset) void start(preset);
