// A wasmswitch call router in C (contract wasmswitch:plugin@0.2.0, world `router`).
//
// A new call to a number (DID) is looked up in the tenant's kv under `did/<number>`; the value
// is a SIP user, and the call is dialled to `sip:<user>@pbx.example.com`. A number not in kv is
// refused with 404. Each decision writes a log line and counts a metric. Every later event of
// the call is answered with no actions: when the bridge ends, the switch ends the call.
//
// The bindings (`router.h`, `router.c`, `router_component_type.o`) are generated into gen/ by
// `wit-bindgen c`; see build.sh and docs/plugins-in-c.md.
//
// Memory, in short (the canonical ABI's ownership rules as the C bindings apply them):
// - The event passed to on_event is OURS: the host wrote its strings and lists into our memory
//   with cabi_realloc (that is, realloc). We free it with the generated *_free function once we
//   are done with it, and never return a pointer into it.
// - The list we return, and every string and list inside it, is handed to the HOST: after it
//   has copied them out, the generated post-return function calls free() on each. So all of it
//   must come from malloc/calloc/realloc (router_string_dup does that), never a string literal,
//   a stack buffer or a pointer into the event.
// - Arguments we pass to imports (log, kv, metrics) are only borrowed by the host: literals and
//   stack buffers are fine (router_string_set just points at them).
// - What an import returns (kv.get's value, an error's message) is OURS: free it.
//
// No <stdio.h>: wasi-libc's stdio, even snprintf, imports WASI (fd_write, fd_seek, fd_close),
// and a module that imports WASI cannot become a component without the preview 1 adapter. The
// few string helpers below keep this plugin's imports to log, kv and metrics.

#include <stdlib.h>
#include <string.h>

#include "router.h"

// Shorter names for the long generated ones.
typedef router_string_t string_t; // UTF-8 bytes: pointer and length, no NUL terminator
typedef wasmswitch_plugin_types_action_t action_t;
typedef exports_wasmswitch_plugin_call_handler_list_action_t action_list_t;

// ---- Allocation and strings ----------------------------------------------------------------

// calloc that traps instead of returning NULL: in wasm, writing through NULL does not trap, it
// scribbles over address 0. (The generated cabi_realloc aborts the same way.)
static void *zalloc(size_t size) {
    void *p = calloc(1, size);
    if (!p) abort();
    return p;
}

// Append bytes to a malloc'd string (start from {NULL, 0}). The result is freed with
// router_string_free, or put in the answer, whose post-return frees it.
static void append(string_t *s, const void *bytes, size_t n) {
    if (n == 0) return;
    uint8_t *p = realloc(s->ptr, s->len + n);
    if (!p) abort();
    memcpy(p + s->len, bytes, n);
    s->ptr = p;
    s->len += n;
}

static void append_c(string_t *s, const char *text) { append(s, text, strlen(text)); }

// u64 fields (received-at, a counter's delta) are uint64_t: print them as such.
static void append_u64(string_t *s, uint64_t v) {
    char digits[20];
    int i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    append(s, digits + i, sizeof digits - i);
}

// ---- Host imports ----------------------------------------------------------------------------

static void log_string(wasmswitch_plugin_log_level_t level, string_t *text) {
    wasmswitch_plugin_log_log(level, text); // borrowed: the host copies it
}

static void log_c(wasmswitch_plugin_log_level_t level, const char *text) {
    string_t s;
    router_string_set(&s, text); // points at the literal, no copy: fine for an argument
    log_string(level, &s);
}

static void count(const char *name) {
    string_t s;
    router_string_set(&s, name);
    wasmswitch_plugin_metrics_counter_add(&s, 1); // delta is a u64
}

// ---- Actions ---------------------------------------------------------------------------------

// Make the answer a list of one zero-filled action, allocated for the host to free. Zero is a
// good start for every record in the bindings: every option none (is_some = false), every list
// empty (NULL, 0).
static action_t *one_action(action_list_t *ret, uint8_t tag) {
    ret->len = 1;
    ret->ptr = zalloc(sizeof(action_t));
    ret->ptr->tag = tag;
    return ret->ptr;
}

// reject(sip-status {code, reason: some(reason)})
static void reject(action_list_t *ret, uint16_t code, const char *reason) {
    action_t *a = one_action(ret, WASMSWITCH_PLUGIN_TYPES_ACTION_REJECT);
    a->val.reject.code = code;
    a->val.reject.reason.is_some = true;
    router_string_dup(&a->val.reject.reason.val, reason); // a malloc'd copy: the host frees it
}

// dial {groups: [{strategy: sequential, targets: [{target: uri}]}]}, everything else none.
// Takes ownership of uri (malloc'd): it goes into the answer as it is.
static void dial(action_list_t *ret, string_t uri) {
    action_t *a = one_action(ret, WASMSWITCH_PLUGIN_TYPES_ACTION_DIAL);
    wasmswitch_plugin_types_dial_t *d = &a->val.dial;
    d->groups.len = 1;
    d->groups.ptr = zalloc(sizeof *d->groups.ptr);
    d->groups.ptr[0].strategy = WASMSWITCH_PLUGIN_TYPES_RING_STRATEGY_SEQUENTIAL;
    d->groups.ptr[0].targets.len = 1;
    d->groups.ptr[0].targets.ptr = zalloc(sizeof *d->groups.ptr[0].targets.ptr);
    d->groups.ptr[0].targets.ptr[0].target = uri;
    // trunk, headers and timeout-ms of the target, and timeout-ms, caller-id, ringback and tag
    // of the dial, stay none / empty: the contract's defaults.
}

// ---- The router ------------------------------------------------------------------------------

static void route(const wasmswitch_plugin_types_call_info_t *call, action_list_t *ret) {
    string_t key = {0};
    append_c(&key, "did/");
    append(&key, call->to.ptr, call->to.len);

    router_option_list_u8_t value; // kv.get: result<option<list<u8>>, error>
    wasmswitch_plugin_kv_error_t err;
    bool ok = wasmswitch_plugin_kv_get(&key, &value, &err); // false: the result is an error
    router_string_free(&key);
    if (!ok) {
        if (err.tag == WASMSWITCH_PLUGIN_KV_ERROR_TOO_LARGE) {
            // A key over 256 bytes: no such number can be in kv.
            log_c(WASMSWITCH_PLUGIN_LOG_LEVEL_WARN, "number too long for a kv key");
            count("unroutable");
            reject(ret, 404, "No Route");
        } else { // unavailable(string): the message is ours, freed below with err
            string_t line = {0};
            append_c(&line, "kv unavailable: ");
            append(&line, err.val.unavailable.ptr, err.val.unavailable.len);
            log_string(WASMSWITCH_PLUGIN_LOG_LEVEL_ERROR, &line);
            router_string_free(&line);
            reject(ret, 503, "Service Unavailable");
        }
        wasmswitch_plugin_kv_error_free(&err);
        return;
    }

    string_t line = {0};
    if (!value.is_some) {
        append_c(&line, "no route for ");
        append(&line, call->to.ptr, call->to.len);
        log_string(WASMSWITCH_PLUGIN_LOG_LEVEL_WARN, &line);
        router_string_free(&line);
        count("unroutable");
        reject(ret, 404, "No Route");
        return;
    }

    string_t uri = {0};
    append_c(&uri, "sip:");
    append(&uri, value.val.ptr, value.val.len); // kv values are bytes, not NUL-terminated
    append_c(&uri, "@pbx.example.com");
    router_option_list_u8_free(&value); // kv.get's value was allocated for us: free it

    append(&line, call->to.ptr, call->to.len);
    append_c(&line, " -> ");
    append(&line, uri.ptr, uri.len);
    append_c(&line, " (received at ");
    append_u64(&line, call->received_at);
    append_c(&line, ")");
    log_string(WASMSWITCH_PLUGIN_LOG_LEVEL_INFO, &line);
    router_string_free(&line);

    count("routed");
    dial(ret, uri); // uri now belongs to the answer
}

// The export: called once per event of the call, on this call's own instance.
void exports_wasmswitch_plugin_call_handler_on_event(
    exports_wasmswitch_plugin_call_handler_call_event_t *event, action_list_t *ret) {
    ret->ptr = NULL; // the empty answer: "carry on"
    ret->len = 0;
    if (event->tag == WASMSWITCH_PLUGIN_TYPES_CALL_EVENT_INCOMING) {
        route(&event->val.incoming, ret);
    }
    exports_wasmswitch_plugin_call_handler_call_event_free(event); // the event is ours to free
}
