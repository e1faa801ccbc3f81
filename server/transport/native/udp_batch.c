// Batched UDP I/O for the DNS workers: recvmmsg(2) and sendmmsg(2) over
// buffers the JavaScript side owns; the socket is watched by the worker's
// own event loop (uv_poll), so a readable socket costs no extra thread,
// wake-up or context switch.
//
// Why by hand: Node's dgram costs one system call, one callback, one Buffer
// and one address object per datagram received, and a request object and a
// system call per datagram sent. On a 2-core PoP that, not DNS work, is where
// the time goes (see README "Where the time goes"). With a batch of up to 64
// datagrams per call the per-datagram cost is a copy into a slot.
//
// Only ABI-stable interfaces are used: Node-API (headers from the
// node-api-headers package), libuv 1.x's uv_poll (headers from Debian's
// libuv1-dev; libuv keeps its ABI within 1.x, Node exports the symbols) and
// POSIX. No V8 internals, so one build serves every Node version that loads
// it. server/transport/udp-batch.ts falls back to dgram when this module is
// missing or cannot be built.
//
// Memory shared with JavaScript, registered once at open():
//   in      slots × IN_SLOT bytes: received datagrams
//   names   slots × NAME_SLOT bytes: each datagram's source (struct sockaddr),
//           read by JavaScript and used as the destination of its reply
//   lengths Int32Array[slots]: datagram lengths on receive (-1 = too long,
//           dropped); reply lengths on send (0 = no reply)
//   out     slots × OUT_SLOT bytes: replies, slot i answers datagram i

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_SLOTS 256
#define NAME_SLOT 32

typedef struct batch_socket {
  uv_poll_t poll;       // first member: the uv handle's address is the socket's
  int fd;
  int slots;
  int in_slot;
  int out_slot;
  unsigned char *in;
  unsigned char *names;
  int32_t *lengths;
  unsigned char *out;
  napi_env env;
  napi_ref buffers[4];  // keeps the shared buffers alive while the socket is
  napi_ref on_readable;
  napi_async_context async_context;
  napi_async_cleanup_hook_handle cleanup;
  int polling;
  int closed;
  int owners;           // the JavaScript handle and the uv handle
  struct mmsghdr rx[MAX_SLOTS];
  struct iovec rx_iov[MAX_SLOTS];
  struct mmsghdr tx[MAX_SLOTS];
  struct iovec tx_iov[MAX_SLOTS];
} batch_socket;

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

// The memory is freed when both owners are done: the JavaScript handle
// (finalized by the garbage collector) and the uv handle (closed by libuv).
static void drop_owner(batch_socket *s) {
  if (--s->owners > 0) return;
  free(s);
}

// Readable: one call into JavaScript, which drains the socket in batches.
// Level-triggered: whatever JavaScript leaves queued reports again on the
// next turn of the loop, after the timers and messages waiting there.
static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)status; (void)events;
  batch_socket *s = (batch_socket *)handle;
  if (s->closed) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, receiver;
  if (napi_get_reference_value(env, s->on_readable, &callback) == napi_ok && callback != NULL) {
    napi_get_global(env, &receiver);
    // make_callback, not call_function: runs queued microtasks and ticks
    // after it, as for any callback from the event loop.
    napi_value ignored;
    napi_status called = napi_make_callback(env, s->async_context, receiver, callback, 0, NULL, &ignored);
    if (called == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static void on_poll_closed(uv_handle_t *handle) {
  batch_socket *s = (batch_socket *)handle;
  if (s->cleanup != NULL) {
    napi_remove_async_cleanup_hook(s->cleanup);
    s->cleanup = NULL;
  }
  drop_owner(s);
}

// Stops watching and closes the socket; the uv handle closes asynchronously.
// Safe to call more than once.
static void stop_socket(batch_socket *s) {
  if (s->closed) return;
  s->closed = 1;
  if (s->polling) {
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_poll_closed);
    s->polling = 0;
  }
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  if (s->on_readable != NULL) {
    napi_delete_reference(s->env, s->on_readable);
    s->on_readable = NULL;
  }
  for (int i = 0; i < 4; i++) {
    if (s->buffers[i] != NULL) napi_delete_reference(s->env, s->buffers[i]);
    s->buffers[i] = NULL;
  }
  if (s->async_context != NULL) {
    napi_async_destroy(s->env, s->async_context);
    s->async_context = NULL;
  }
}

// The worker thread is ending without close(): let libuv close the handle
// before the loop goes away.
static void cleanup_hook(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  stop_socket(arg);
}

static void finalize_socket(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  batch_socket *s = data;
  stop_socket(s);
  drop_owner(s);
}

static int buffer_of(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_typed;
  napi_is_typedarray(env, value, &is_typed);
  if (!is_typed) return 0;
  napi_typedarray_type type;
  napi_value array_buffer;
  size_t offset, count;
  if (napi_get_typedarray_info(env, value, &type, &count, data, &array_buffer, &offset) != napi_ok) return 0;
  size_t element = (type == napi_int32_array) ? 4 : 1;
  *length = count * element;
  return 1;
}

static int32_t int_arg(napi_env env, napi_value value) {
  int32_t result = 0;
  napi_get_value_int32(env, value, &result);
  return result;
}

// open(host, port, ipv6, slots, inSlot, outSlot, in, names, lengths, out, onReadable)
// → [handle, boundPort]
static napi_value open_socket(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 11) { napi_throw_type_error(env, NULL, "open: 11 arguments expected"); return NULL; }

  char host[64];
  size_t host_length;
  if (napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_length) != napi_ok) {
    napi_throw_type_error(env, NULL, "open: host must be a string");
    return NULL;
  }
  int port = int_arg(env, argv[1]);
  bool ipv6 = false;
  napi_get_value_bool(env, argv[2], &ipv6);
  int slots = int_arg(env, argv[3]);
  int in_slot = int_arg(env, argv[4]);
  int out_slot = int_arg(env, argv[5]);
  if (slots < 1 || slots > MAX_SLOTS || in_slot < 512 || out_slot < 512) {
    napi_throw_range_error(env, NULL, "open: bad slot geometry");
    return NULL;
  }
  void *in, *names, *lengths, *out;
  size_t in_length, names_length, lengths_length, out_length;
  if (!buffer_of(env, argv[6], &in, &in_length) || in_length < (size_t)slots * in_slot ||
      !buffer_of(env, argv[7], &names, &names_length) || names_length < (size_t)slots * NAME_SLOT ||
      !buffer_of(env, argv[8], &lengths, &lengths_length) || lengths_length < (size_t)slots * 4 ||
      !buffer_of(env, argv[9], &out, &out_length) || out_length < (size_t)slots * out_slot) {
    napi_throw_range_error(env, NULL, "open: shared buffers too small");
    return NULL;
  }

  union { struct sockaddr_in v4; struct sockaddr_in6 v6; } local;
  socklen_t local_length;
  memset(&local, 0, sizeof local);
  if (ipv6) {
    local.v6.sin6_family = AF_INET6;
    local.v6.sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &local.v6.sin6_addr) != 1) { napi_throw_type_error(env, NULL, "open: not an IPv6 address"); return NULL; }
    local_length = sizeof local.v6;
  } else {
    local.v4.sin_family = AF_INET;
    local.v4.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &local.v4.sin_addr) != 1) { napi_throw_type_error(env, NULL, "open: not an IPv4 address"); return NULL; }
    local_length = sizeof local.v4;
  }

  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on);
  if (ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  // Replies are never fragmented (RFC 9715 §3.1: DF set, IPV6_DONTFRAG), and
  // path-MTU information, which forged ICMP can lower, is ignored: the engine
  // caps UDP replies at 1232 octets, which fits any link's MTU. A reply that
  // does not fit a path is lost and the client retries over TCP.
  if (ipv6) {
    int probe = IPV6_PMTUDISC_PROBE;
    setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &probe, sizeof probe);
    setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &on, sizeof on);
  } else {
    int probe = IP_PMTUDISC_PROBE;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &probe, sizeof probe);
  }
  // Generous buffers absorb bursts while the worker is busy; the kernel's limit applies.
  int size = 4 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (bind(fd, (struct sockaddr *)&local, local_length) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  socklen_t bound_length = sizeof local;
  getsockname(fd, (struct sockaddr *)&local, &bound_length);
  int bound_port = ntohs(ipv6 ? local.v6.sin6_port : local.v4.sin_port);

  uv_loop_t *loop = NULL;
  if (napi_get_uv_event_loop(env, (struct uv_loop_s **)&loop) != napi_ok || loop == NULL) {
    close(fd);
    napi_throw_error(env, NULL, "open: no event loop");
    return NULL;
  }
  batch_socket *s = calloc(1, sizeof *s);
  if (s == NULL) { close(fd); napi_throw_error(env, NULL, "open: out of memory"); return NULL; }
  s->fd = fd;
  s->env = env;
  s->owners = 1;
  s->slots = slots;
  s->in_slot = in_slot;
  s->out_slot = out_slot;
  s->in = in;
  s->names = names;
  s->lengths = lengths;
  s->out = out;
  for (int i = 0; i < 4; i++) napi_create_reference(env, argv[6 + i], 1, &s->buffers[i]);
  napi_create_reference(env, argv[10], 1, &s->on_readable);
  // Receive headers point at fixed slots; receive() only resets what the kernel writes back.
  for (int i = 0; i < slots; i++) {
    s->rx_iov[i].iov_base = s->in + (size_t)i * in_slot;
    s->rx_iov[i].iov_len = (size_t)in_slot;
    s->rx[i].msg_hdr.msg_name = s->names + (size_t)i * NAME_SLOT;
    s->rx[i].msg_hdr.msg_iov = &s->rx_iov[i];
    s->rx[i].msg_hdr.msg_iovlen = 1;
    s->tx_iov[i].iov_base = s->out + (size_t)i * out_slot;
  }
  napi_value resource, resource_name;
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, "popsteer.udp_batch", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, resource, resource_name, &s->async_context);

  int failed = uv_poll_init(loop, &s->poll, fd);
  if (failed == 0) {
    s->owners = 2;
    s->polling = 1;
    failed = uv_poll_start(&s->poll, UV_READABLE, on_poll);
  }
  if (failed != 0) {
    stop_socket(s);
    drop_owner(s);
    napi_throw_error(env, NULL, uv_strerror(failed));
    return NULL;
  }
  napi_add_async_cleanup_hook(env, cleanup_hook, s, &s->cleanup);

  napi_value handle, port_value, result;
  napi_create_external(env, s, finalize_socket, NULL, &handle);
  napi_create_int32(env, bound_port, &port_value);
  napi_create_array_with_length(env, 2, &result);
  napi_set_element(env, result, 0, handle);
  napi_set_element(env, result, 1, port_value);
  return result;
}

static batch_socket *socket_arg(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_get_cb_info(env, info, argc, argv, NULL, NULL);
  void *data = NULL;
  if (*argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "not a popsteer UDP socket");
    return NULL;
  }
  return data;
}

// receive(handle) → number of datagrams now in the slots (0 when none waits).
static napi_value receive(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  batch_socket *s = socket_arg(env, info, &argc, argv);
  if (s == NULL) return NULL;
  int count = 0;
  if (!s->closed) {
    for (int i = 0; i < s->slots; i++) s->rx[i].msg_hdr.msg_namelen = NAME_SLOT;
    int received = recvmmsg(s->fd, s->rx, (unsigned)s->slots, MSG_DONTWAIT, NULL);
    if (received > 0) {
      count = received;
      for (int i = 0; i < count; i++) {
        // A datagram longer than a slot is no DNS query this server answers: drop it.
        s->lengths[i] = (s->rx[i].msg_hdr.msg_flags & MSG_TRUNC) ? -1 : (int32_t)s->rx[i].msg_len;
      }
    }
  }
  napi_value result;
  napi_create_int32(env, count, &result);
  return result;
}

// send(handle, count) → replies handed to the kernel. Slot i's reply (length in
// lengths[i], 0 = none) goes to the source of datagram i.
static napi_value send_replies(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  batch_socket *s = socket_arg(env, info, &argc, argv);
  if (s == NULL) return NULL;
  int count = argc > 1 ? int_arg(env, argv[1]) : 0;
  if (count > s->slots) count = s->slots;
  int queued = 0;
  for (int i = 0; i < count; i++) {
    int32_t length = s->lengths[i];
    if (length <= 0 || length > s->out_slot) continue;
    struct msghdr *h = &s->tx[queued].msg_hdr;
    struct sockaddr *name = (struct sockaddr *)(s->names + (size_t)i * NAME_SLOT);
    h->msg_name = name;
    h->msg_namelen = name->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    s->tx_iov[i].iov_len = (size_t)length;
    h->msg_iov = &s->tx_iov[i];
    h->msg_iovlen = 1;
    h->msg_control = NULL;
    h->msg_controllen = 0;
    h->msg_flags = 0;
    queued++;
  }
  int sent = 0;
  while (!s->closed && sent < queued) {
    int n = sendmmsg(s->fd, s->tx + sent, (unsigned)(queued - sent), MSG_DONTWAIT);
    if (n > 0) { sent += n; continue; }
    if (n < 0 && errno == EINTR) continue;
    // Full send buffer or an unreachable destination: UDP replies may be lost,
    // skip this one and carry on with the rest.
    sent++;
  }
  napi_value result;
  napi_create_int32(env, queued, &result);
  return result;
}

// sourceText(handle, slot) → the text of datagram slot's source address
// (inet_ntop: RFC 5952 for IPv6, as dgram's rinfo.address).
static napi_value source_text(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  batch_socket *s = socket_arg(env, info, &argc, argv);
  if (s == NULL) return NULL;
  int slot = argc > 1 ? int_arg(env, argv[1]) : -1;
  if (slot < 0 || slot >= s->slots) { napi_throw_range_error(env, NULL, "sourceText: no such slot"); return NULL; }
  const struct sockaddr *name = (const struct sockaddr *)(s->names + (size_t)slot * NAME_SLOT);
  char text[INET6_ADDRSTRLEN] = "";
  if (name->sa_family == AF_INET6) inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)name)->sin6_addr, text, sizeof text);
  else inet_ntop(AF_INET, &((const struct sockaddr_in *)name)->sin_addr, text, sizeof text);
  napi_value result;
  napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &result);
  return result;
}

// fragmentation(handle) → { mtuDiscover, dontFragment } as the kernel reports
// them (getsockopt), so a test can check RFC 9715's setting holds.
static napi_value fragmentation(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  batch_socket *s = socket_arg(env, info, &argc, argv);
  if (s == NULL) return NULL;
  if (s->closed) { napi_throw_error(env, NULL, "fragmentation: socket closed"); return NULL; }
  struct sockaddr_storage local;
  socklen_t local_length = sizeof local;
  getsockname(s->fd, (struct sockaddr *)&local, &local_length);
  int mode = -1, dontfrag = 0;
  socklen_t size = sizeof mode;
  if (local.ss_family == AF_INET6) {
    getsockopt(s->fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &mode, &size);
    size = sizeof dontfrag;
    getsockopt(s->fd, IPPROTO_IPV6, IPV6_DONTFRAG, &dontfrag, &size);
  } else {
    getsockopt(s->fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, &size);
    // IPv4 has no separate option: DF follows the discovery mode.
    dontfrag = mode == IP_PMTUDISC_DO || mode == IP_PMTUDISC_PROBE;
  }
  napi_value result, mode_value, dontfrag_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, mode == IP_PMTUDISC_PROBE ? "probe" : mode == IP_PMTUDISC_DO ? "do"
    : mode == IP_PMTUDISC_DONT ? "dont" : mode == IP_PMTUDISC_WANT ? "want" : "other", NAPI_AUTO_LENGTH, &mode_value);
  napi_get_boolean(env, dontfrag != 0, &dontfrag_value);
  napi_set_named_property(env, result, "mtuDiscover", mode_value);
  napi_set_named_property(env, result, "dontFragment", dontfrag_value);
  return result;
}

// close(handle): stops watching and closes the socket. Idempotent.
static napi_value close_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  batch_socket *s = socket_arg(env, info, &argc, argv);
  if (s == NULL) return NULL;
  stop_socket(s);
  return NULL;
}

// releaseFreeMemory(): hands memory malloc holds but no longer uses back to
// the kernel (malloc_trim). The start-up load frees hundreds of megabytes of
// build-time tables in the middle of the heap, where malloc would keep them
// resident. Returns whether any was released.
static napi_value release_free_memory(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
    { "open", NULL, open_socket, NULL, NULL, NULL, napi_default, NULL },
    { "receive", NULL, receive, NULL, NULL, NULL, napi_default, NULL },
    { "send", NULL, send_replies, NULL, NULL, NULL, napi_default, NULL },
    { "sourceText", NULL, source_text, NULL, NULL, NULL, napi_default, NULL },
    { "fragmentation", NULL, fragmentation, NULL, NULL, NULL, napi_default, NULL },
    { "releaseFreeMemory", NULL, release_free_memory, NULL, NULL, NULL, napi_default, NULL },
    { "close", NULL, close_socket, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
  napi_value slots, name_slot;
  napi_create_int32(env, MAX_SLOTS, &slots);
  napi_create_int32(env, NAME_SLOT, &name_slot);
  napi_set_named_property(env, exports, "MAX_SLOTS", slots);
  napi_set_named_property(env, exports, "NAME_SLOT", name_slot);
  return exports;
}
