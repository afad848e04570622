#!/usr/bin/env python3
"""A second world for `runner`: a stand-in for the provider's video API.

This server is written from the provider's own pages (SPEC.md section 1 and
api-docs/current/: tasks--video-status, rate-limits--async-tasks,
uploads--images, account--token-balance, videos--veo3,
videos--gemini-omni-flash, videos--seedance-2 for client_business_id), NOT
from the runner's built-in simulator in src/sim/, so that the runner can be
tested against assumptions its authors did not share.  Where the pages are
silent, the choice made here is written down in tests/worlds/README.md.

Python 3.11 standard library only.  Run:

    python3 tests/worlds/provider.py --port 0 --time-scale 0.05 [faults...]

It prints one line `listening on http://127.0.0.1:PORT` and serves until its
stdin reaches EOF, --max-seconds pass, or it is killed.  `--help` lists the
flags.  Extra routes for tests: GET /_world/stats, GET /_world/sha256/{id},
POST /_world/topup?usd=N.
"""

import argparse
import hashlib
import json
import os
import random
import re
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# (rate per second, 10 s burst) for submits and for status queries, per the
# table in rate-limits--async-tasks.mdx.
TIERS = {
    "default": {"async_submit": (5.0, 50), "async_query": (50.0, 500)},
    "vip": {"async_submit": (16.7, 167), "async_query": (166.7, 1667)},
    "svip": {"async_submit": (33.3, 334), "async_query": (500.0, 5000)},
}
MICRO = 1_000_000  # money is kept in integer micro-USD so 0.1 * 3 stays exact
CREDITS_PER_USD = 200
UPLOAD_MAX = 10 * 1024 * 1024  # "Maximum file size: 10MB"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

NGINX_503 = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n"
             b"<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
             b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
CLOUDFLARE_524 = (b"<!DOCTYPE html>\n<html lang=\"en-US\"><head><title>toapis.com | 524: A timeout occurred"
                  b"</title><meta charset=\"UTF-8\" /></head><body><div id=\"cf-wrapper\">"
                  b"<h1><span class=\"cf-error-type\">Error</span> <span class=\"cf-error-code\">524</span>"
                  b"</h1><h2>A timeout occurred</h2><p>The origin web server timed out responding to this "
                  b"request.</p><p>Cloudflare Ray ID: <strong>8f1c2a3b4d5e6f70</strong></p>"
                  b"<p>Performance &amp; security by Cloudflare</p></div></body></html>\n")
HTML_DOWNLOAD = (b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>"
                 b"<h1>Checking your browser before accessing files.toapis.com</h1>"
                 b"<p>This process is automatic.</p></body></html>\n")


def ulid_like(seed, kind, n):
    """A 26-character Crockford base32 id, deterministic in (seed, kind, n)."""
    v = int.from_bytes(hashlib.sha256(f"{seed}:{kind}:{n}".encode()).digest()[:17], "big")
    chars = [CROCKFORD[(v >> (5 * i)) & 31] for i in range(26)]
    return "01K" + "".join(chars)[3:]


def unit(seed, *parts):
    """A uniform number in [0, 1) derived from the seed and the parts."""
    h = hashlib.sha256(":".join(str(p) for p in (seed,) + parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


class Bucket:
    """A token bucket in real seconds (rate limits are not time-scaled)."""

    def __init__(self, rate, burst):
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.at = float(burst), time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - self.tokens) / self.rate

    def headers(self, category):
        reset = (self.burst - self.tokens) / self.rate
        return {"X-RateLimit-Limit": str(int(self.burst)),
                "X-RateLimit-Remaining": str(max(0, int(self.tokens))),
                "X-RateLimit-Reset": str(int(reset + 0.999)),
                "X-RateLimit-Category": category}


class Task:
    def __init__(self, index, tid, body, created_s, run_s, fails):
        self.index, self.id, self.body = index, tid, body
        self.model = body["model"]
        self.prompt = body["prompt"]
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
        self.metadata = meta
        cbid = body.get("client_business_id") or (meta or {}).get("client_business_id")
        self.cbid = cbid if isinstance(cbid, str) and cbid else None
        self.created_s, self.run_s, self.fails = created_s, run_s, fails
        self.created_at = int(time.time())
        self.polls = 0            # every poll naming this task
        self.done_polls = 0       # polls answered for it while it was completed
        self.gets = 0             # GETs of its video URL
        self.token = hashlib.sha256(tid.encode()).hexdigest()
        self.gateway_524 = False


class World:
    """All state of the fake provider; every method runs under self.lock."""

    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.first_request_s = None
        self.base = ""
        self.tasks, self.by_cbid, self.order = {}, {}, []
        self.buckets = {}
        self.uploads = {}
        self.sha_cache = {}
        self.unlimited = a.balance is None
        self.remain = 0 if self.unlimited else round(a.balance * MICRO)
        self.used = 0
        self.price = round(a.price * MICRO)
        self.stats = {k: 0 for k in (
            "submits_received", "tasks_created", "polls", "downloads", "downloads_complete",
            "bytes_sent", "uploads", "balance_queries", "status_400", "status_401", "status_402",
            "status_404", "status_429", "status_429_submit", "status_429_query", "status_500",
            "outage_answers", "gateway_answers", "limiter_down_answers", "swapped_polls",
            "late_url_polls", "html_downloads", "trickle_downloads", "expired_downloads")}
        self.per_prompt = {}
        self.tasks_per_prompt = {}

    def now_s(self):
        """Server time: real seconds since start divided by --time-scale."""
        return (time.monotonic() - self.t0) / self.a.time_scale

    def count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def in_window(self, windows):
        """Windows count server seconds from the first API request, not from
        the server's start: a client that starts slowly still meets them."""
        s = self.now_s()
        if self.first_request_s is None:
            self.first_request_s = s
        s -= self.first_request_s
        return any(start <= s < start + length for start, length in windows)

    def bucket(self, key, category):
        b = self.buckets.get((key, category))
        if b is None:
            rate, burst = TIERS[self.a.tier][category]
            b = self.buckets[(key, category)] = Bucket(rate, burst)
        return b

    def create(self, body):
        n = len(self.order)
        tid = "video_" + ulid_like(self.a.seed, "task", n)
        rng = random.Random(f"{self.a.seed}:spread:{n}")
        run_s = self.a.generation_time * rng.lognormvariate(0.0, self.a.spread)
        fails = unit(self.a.seed, "fail", n) < self.a.fail_rate
        t = Task(n, tid, body, self.now_s(), run_s, fails)
        self.tasks[tid] = t
        self.order.append(t)
        if t.cbid:
            self.by_cbid[t.cbid] = t  # a reused id finds the latest task
        self.stats["tasks_created"] += 1
        self.tasks_per_prompt[t.prompt] = self.tasks_per_prompt.get(t.prompt, 0) + 1
        if not self.unlimited:
            self.remain -= self.price
        self.used += self.price
        return t

    def phase(self, t):
        """('queued'|'in_progress'|'completed'|'failed', progress, finished_s)."""
        el = self.now_s() - t.created_s
        q = self.a.queue_time
        if el < q:
            return "queued", 0, None
        if el < q + t.run_s:
            return "in_progress", max(1, min(99, int(100 * (el - q) / t.run_s))), None
        return ("failed" if t.fails else "completed"), 100, t.created_s + q + t.run_s

    def view(self, t, hide_url=False, submit=False):
        """The task object as the status page documents it."""
        status, progress, fin = ("queued", 0, None) if submit else self.phase(t)
        if status == "failed":
            progress = 0
        gemini = t.model.replace("_", "-").startswith("gemini-omni-flash")
        o = {"id": t.id, "object": "generation.task", "model": t.model,
             "status": status.upper() if self.a.upper_status else status}
        if t.cbid:
            o["client_business_id"] = t.cbid
        if not (gemini and status == "queued"):  # that page shows no progress while queued
            o["progress"] = f"{progress}%" if self.a.percent_progress else progress
        o["created_at"] = t.created_at
        if t.metadata is not None:
            o["metadata"] = t.metadata
        if fin is not None:
            done_at = int(t.created_at + fin * self.a.time_scale - t.created_s * self.a.time_scale)
            o["completed_at"] = done_at
        if status == "failed":
            o["error"] = {"code": "generation_failed",
                          "message": "Generation failed: Content violates the content policy"}
        elif status == "completed":
            o["expires_at"] = int(o["completed_at"] + self.a.url_ttl * self.a.time_scale)
            if not hide_url:
                url = self.video_url(t)
                o["result"] = {"type": "video", "data": [{"url": url, "format": "mp4"}]}
                if gemini:
                    o["video_url"] = url  # the Gemini Omni Flash page names this field too
        return o

    def video_url(self, t):
        return f"{self.base}/files/videos/{t.id}/{t.token[:8]}_{t.token[8:16]}.mp4"

    def video_head(self):
        size = self.a.video_size
        return (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
                + struct.pack(">I", size - 24) + b"mdat")

    def video_bytes(self, tid, start, end):
        """Bytes [start, end) of the task's video: ftyp + mdat header, then sha256 counter mode."""
        head = self.video_head()
        out = bytearray()
        pos = start
        while pos < end:
            if pos < len(head):
                piece = head[pos:min(end, len(head))]
            else:
                blk, inner = divmod(pos - len(head), 32)
                d = hashlib.sha256(tid.encode() + blk.to_bytes(8, "big")).digest()
                piece = d[inner:inner + (end - pos)]
            out += piece
            pos += len(piece)
        return bytes(out)

    def video_sha256(self, tid):
        if tid not in self.sha_cache:
            h = hashlib.sha256()
            for s in range(0, self.a.video_size, 1 << 16):
                h.update(self.video_bytes(tid, s, min(self.a.video_size, s + (1 << 16))))
            self.sha_cache[tid] = h.hexdigest()
        return self.sha_cache[tid]

    def balance(self):
        rem = -1 if self.unlimited else self.remain / MICRO
        return {"success": True, "remain_balance": rem, "used_balance": self.used / MICRO,
                "remain_credits": (0 if self.unlimited else self.remain) / MICRO * CREDITS_PER_USD,
                "used_credits": self.used / MICRO * CREDITS_PER_USD,
                "credits_per_usd": CREDITS_PER_USD, "unlimited_quota": self.unlimited}

    def snapshot(self):
        s = dict(self.stats)
        s["submits_per_prompt"] = dict(self.per_prompt)
        s["tasks_per_prompt"] = dict(self.tasks_per_prompt)
        s["balance"] = self.balance()
        s["server_time"] = round(self.now_s(), 3)
        s["tasks_failed"] = sum(1 for t in self.order if self.phase(t)[0] == "failed")
        s["tasks"] = {t.id: {"prompt": t.prompt, "model": t.model, "client_business_id": t.cbid,
                             "image_urls": t.body.get("image_urls"),
                             "status": self.phase(t)[0], "polls": t.polls, "gets": t.gets,
                             "gateway_524": t.gateway_524} for t in self.order}
        return s


def err(message, type_, code):
    return {"error": {"message": message, "type": type_, "code": code}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def version_string(self):
        return "toapis-world/1"

    @property
    def world(self):
        return self.server.world

    def log_message(self, fmt, *args):
        if self.world.a.verbose:
            sys.stderr.write("provider.py: %s %s\n" % (self.address_string(), fmt % args))

    # ---- plumbing -------------------------------------------------------
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        self.sent = False
        try:
            self.body = self.read_body()
            self.route(method)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception:
            sys.stderr.write(f"provider.py: error in {method} {self.path}:\n{traceback.format_exc()}")
            sys.stderr.flush()
            self.world.count("status_500")
            if not self.sent:
                try:
                    self.reply(500, err("Internal server error", "internal_error", "internal_error"))
                except OSError:
                    pass
            self.close_connection = True

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, code, body, ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.sent = True
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # ---- routing --------------------------------------------------------
    def route(self, method):
        w = self.world
        u = urlsplit(self.path)
        path, query = u.path, parse_qs(u.query)
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["_world"]:
            return self.world_route(method, parts, query)
        if parts[:2] == ["files", "videos"] and len(parts) == 4 and method in ("GET", "HEAD"):
            return self.download(parts[2], parts[3])
        if parts[:2] == ["files", "uploads"] and method in ("GET", "HEAD"):
            with w.lock:
                up = w.uploads.get(path)
            if up is None:
                return self.reply(404, b"Not Found", "text/plain")
            return self.reply(200, up[1], up[0])
        api = parts[:1] == ["v1"] or path == "/balance"
        if not api:
            return self.reply(404, err("Not found", "not_found_error", 404))
        if w.in_window(w.a.outage):
            w.count("outage_answers")
            return self.reply(503, NGINX_503, "text/html")
        key = self.api_key()
        if key is None:
            w.count("status_401")
            return self.reply(401, err("Authentication failed, please check your API key",
                                       "authentication_error", 401))
        if parts[1:3] == ["videos", "generations"]:
            if method == "POST" and len(parts) == 3:
                return self.submit(key)
            if method == "GET" and len(parts) == 4:
                return self.poll(key, parts[3])
        if method == "POST" and parts[1:] == ["uploads", "images"]:
            return self.upload()
        if method == "GET" and path in ("/v1/balance", "/balance"):
            w.count("balance_queries")
            with w.lock:
                return self.reply(200, w.balance())
        return self.reply(404, err("Not found", "not_found_error", 404))

    def api_key(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Bearer "):
            return None
        key = h[len("Bearer "):].strip()
        if not key or (self.world.a.key and key not in self.world.a.key):
            return None
        return key

    def limited(self, key, category):
        """Take a token; on refusal answer 429 and return None, else the headers to send."""
        w = self.world
        if w.a.no_limits:
            return {}
        with w.lock:
            b = w.bucket(key, category)
            ok, wait = b.take()
            headers = b.headers(category)
            if not ok:
                w.stats["status_429"] += 1
                w.stats["status_429_submit" if category == "async_submit" else "status_429_query"] += 1
        if ok:
            return headers
        headers["Retry-After"] = str(max(1, int(wait + 0.999)))
        self.reply(429, {"error": {"code": "rate_limit_exceeded",
                                   "message": "Async task request rate exceeded"}}, headers=headers)
        return None

    # ---- the documented API ---------------------------------------------
    def submit(self, key):
        w = self.world
        w.count("submits_received")
        try:
            body = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if isinstance(prompt, str):
            with w.lock:
                w.per_prompt[prompt] = w.per_prompt.get(prompt, 0) + 1
        if w.in_window(w.a.limiter_down):
            w.count("limiter_down_answers")
            return self.reply(503, {"error": {
                "code": "rate_limit_unavailable",
                "message": "The async task submit limiter is temporarily unavailable"}})
        headers = self.limited(key, "async_submit")
        if headers is None:
            return
        if not isinstance(body, dict):
            w.count("status_400")
            return self.reply(400, err("Request body must be a JSON object", "invalid_request_error",
                                       "invalid_request"), headers=headers)
        for field in ("model", "prompt"):
            if not isinstance(body.get(field), str) or not body[field].strip():
                w.count("status_400")
                return self.reply(400, err(f"Invalid request: field '{field}' is required",
                                           "invalid_request_error", "invalid_request"), headers=headers)
        problem = model_rules(body)
        if problem:
            w.count("status_400")
            return self.reply(400, err(problem, "invalid_request_error", "invalid_parameter"),
                              headers=headers)
        with w.lock:
            if not w.unlimited and w.remain < w.price:
                w.stats["status_402"] += 1
                answer = None
            else:
                t = w.create(body)
                answer = w.view(t, submit=True)
                n = w.stats["submits_received"]
                t.gateway_524 = unit(w.a.seed, "524", t.index, n) < w.a.gateway_524
                if t.gateway_524:
                    w.stats["gateway_answers"] += 1
        if answer is None:
            return self.reply(402, err("Insufficient account balance", "insufficient_quota",
                                       "insufficient_user_quota"), headers=headers)
        if t.gateway_524:
            return self.reply(524, CLOUDFLARE_524, "text/html; charset=UTF-8")
        return self.reply(200, answer, headers=headers)

    def poll(self, key, tid):
        w = self.world
        headers = self.limited(key, "async_query")
        if headers is None:
            return
        with w.lock:
            w.stats["polls"] += 1
            t = w.tasks.get(tid) or w.by_cbid.get(tid)
            if t is None:
                w.stats["status_404"] += 1
                answer = None
            else:
                t.polls += 1
                if t.polls <= w.a.swap_ids:
                    w.stats["swapped_polls"] += 1
                    answer = self.other_task(t)
                else:
                    hide = False
                    if w.phase(t)[0] == "completed":
                        t.done_polls += 1
                        hide = t.done_polls <= w.a.late_url
                        if hide:
                            w.stats["late_url_polls"] += 1
                    answer = w.view(t, hide_url=hide)
        if answer is None:
            return self.reply(404, err("Task not found", "not_found_error", 404), headers=headers)
        return self.reply(200, answer, headers=headers)

    def other_task(self, t):
        """Another task's object (--swap-ids), or a phantom if there is no other task."""
        w = self.world
        others = [o for o in w.order if o is not t]
        if others:
            pick = others[int(unit(w.a.seed, "swap", t.index, t.polls) * len(others))]
            return w.view(pick)
        phantom = {"id": "video_" + ulid_like(w.a.seed, "phantom", t.index),
                   "object": "generation.task", "model": t.model,
                   "status": "COMPLETED" if w.a.upper_status else "completed",
                   "progress": "100%" if w.a.percent_progress else 100, "created_at": t.created_at,
                   "completed_at": int(time.time()), "expires_at": int(time.time()) + 86400,
                   "result": {"type": "video", "data": [
                       {"url": f"{w.base}/files/videos/phantom/0_0.mp4", "format": "mp4"}]}}
        return phantom

    def upload(self):
        w = self.world
        ctype = self.headers.get("Content-Type", "")
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        part = None
        if ctype.lower().startswith("multipart/form-data") and m:
            part = multipart_file(self.body, m.group(1).encode())
        if part is None:
            w.count("status_400")
            return self.reply(400, {"success": False, "message": "No file uploaded (multipart field 'file')"})
        filename, declared, data = part
        mime = sniff(data) or (declared if declared in ALLOWED else None)
        if mime is None:
            ext = os.path.splitext(filename)[1].lower()
            mime = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
                    ".webp": "image/webp", ".gif": "image/gif"}.get(ext)
        if mime is None:
            w.count("status_400")
            return self.reply(400, {"success": False,
                                    "message": "Unsupported image type. Allowed: JPEG, PNG, WebP, GIF"})
        if len(data) > UPLOAD_MAX:
            w.count("status_400")
            return self.reply(400, {"success": False, "message": "Image too large. Maximum size is 10MB"})
        with w.lock:
            w.stats["uploads"] += 1
            n = w.stats["uploads"]
            uid = hashlib.sha256(f"{w.a.seed}:upload:{n}".encode()).hexdigest()[:8]
            path = f"/files/uploads/1/{int(time.time())}_{uid}.{ALLOWED[mime]}"
            w.uploads[path] = (mime, data)
        return self.reply(200, {"success": True, "message": "",
                                "data": {"id": f"upload_{uid}", "url": w.base + path,
                                         "mime_type": mime, "size": len(data)}})

    # ---- the file host ---------------------------------------------------
    def download(self, tid, name):
        w = self.world
        with w.lock:
            t = w.tasks.get(tid)
            ok = t is not None and name == f"{t.token[:8]}_{t.token[8:16]}.mp4"
            if ok:
                status, _, fin = w.phase(t)
                ok = status == "completed"
            if not ok:
                w.stats["status_404"] += 1
            elif w.now_s() > fin + w.a.url_ttl:
                w.stats["expired_downloads"] += 1
                ok = "expired"
            else:
                w.stats["downloads"] += 1
                t.gets += 1
                k = t.gets
        if ok is False:
            return self.reply(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html")
        if ok == "expired":
            return self.reply(403, b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied'
                              b"</Code><Message>Request has expired</Message></Error>", "application/xml")
        if k <= w.a.html_downloads:
            w.count("html_downloads")
            return self.reply(200, HTML_DOWNLOAD, "text/html; charset=utf-8")
        trickle = k <= w.a.html_downloads + w.a.trickle
        total = w.a.video_size
        start, end, code = 0, total, 200
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{t.token[:16]}"'}
        rng = self.headers.get("Range")
        if rng:
            r = parse_range(rng, total)
            if r == "unsatisfiable":
                headers["Content-Range"] = f"bytes */{total}"
                return self.reply(416, b"", "text/plain", headers)
            if r is not None:
                start, end, code = r[0], r[1] + 1, 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
        self.sent = True
        self.send_response(code)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start))
        for h, v in headers.items():
            self.send_header(h, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if trickle:
            w.count("trickle_downloads")
        step = 1 if trickle else 1 << 16
        pos = start
        while pos < end:
            chunk = w.video_bytes(tid, pos, min(end, pos + step))
            self.wfile.write(chunk)
            w.count("bytes_sent", len(chunk))
            pos += len(chunk)
            if trickle and pos < end:
                self.wfile.flush()
                time.sleep(w.a.time_scale)  # one byte per server second
        w.count("downloads_complete")

    # ---- test-only routes ----------------------------------------------------
    def world_route(self, method, parts, query):
        w = self.world
        if method == "GET" and parts[1:] == ["stats"]:
            with w.lock:
                return self.reply(200, w.snapshot())
        if method == "GET" and len(parts) == 3 and parts[1] == "sha256":
            with w.lock:
                known = parts[2] in w.tasks
                digest = w.video_sha256(parts[2]) if known else ""
            if not known:
                return self.reply(404, b"unknown task", "text/plain")
            return self.reply(200, digest.encode(), "text/plain")
        if method == "POST" and parts[1:] == ["topup"]:
            try:
                usd = float(query.get("usd", ["0"])[0])
            except ValueError:
                return self.reply(400, {"success": False, "message": "usd must be a number"})
            with w.lock:
                if not w.unlimited:
                    w.remain += round(usd * MICRO)
                return self.reply(200, w.balance())
        return self.reply(404, b"unknown world route", "text/plain")


ALLOWED = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


def model_rules(body):
    """Today's rules for the veo3.1 family and gemini-omni-flash (SPEC §1, the
    current videos--veo3 and videos--gemini-omni-flash pages), read here on their
    own and not from the runner's catalogue. Other models are not checked.
    Returns what is wrong, or None."""
    model = body.get("model")
    images = body.get("image_urls") or []
    if not isinstance(images, list):
        return "image_urls must be an array"
    aspect = body.get("aspect_ratio", "16:9")
    if model in ("veo3.1-fast", "veo3.1-quality", "veo3.1-lite"):
        meta = body.get("metadata") or {}
        if body.get("duration", 8) != 8:
            return "veo3.1 videos are 8 seconds"
        if aspect not in ("16:9", "9:16"):
            return f"aspect_ratio {aspect} is not supported"
        resolution = meta.get("resolution", "720p")
        if resolution not in ("720p", "1080p", "4k"):
            return f"metadata.resolution {resolution} is not supported"
        kind = meta.get("generation_type")
        if kind is None:
            kind = "reference" if len(images) == 3 else "frame"
        if kind == "reference" and model == "veo3.1-quality":
            return "veo3.1-quality does not support reference mode"
        if kind not in ("frame", "reference"):
            return f"metadata.generation_type {kind} is not supported"
        if len(images) > (3 if kind == "reference" else 2):
            return f"too many images for {kind} mode"
        if meta.get("enable_gif") and resolution in ("1080p", "4k"):
            return "enable_gif is not supported at 1080p or 4k"
        return None
    if model in ("gemini-omni-flash", "gemini_omni_flash"):
        if body.get("duration", 6) not in (4, 6, 10):
            return "duration must be 4, 6 or 10"
        if aspect not in ("16:9", "9:16"):
            return f"aspect_ratio {aspect} is not supported"
        resolution = str(body.get("resolution", "720p")).lower()
        if resolution not in ("720p", "1080p"):
            return f"resolution {resolution} is not supported"
        if resolution == "1080p" and aspect != "16:9":
            return "1080p is only available in landscape (16:9)"
        if len(images) > 3:
            return "at most 3 reference images"
        return None
    return None


def sniff(data):
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def multipart_file(body, boundary):
    """(filename, content type, bytes) of the part named `file`, or None."""
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        head = head.decode("utf-8", "replace")
        if not re.search(r'(?i)content-disposition:[^\r\n]*\bname="file"', head):
            continue
        fn = re.search(r'filename="([^"]*)"', head)
        ct = re.search(r"(?i)content-type:\s*([^\r\n;]+)", head)
        if data.endswith(b"\r\n"):
            data = data[:-2]
        return (fn.group(1) if fn else ""), (ct.group(1).strip().lower() if ct else ""), data
    return None


def parse_range(value, total):
    """(start, last) for a single `bytes=` range, "unsatisfiable", or None to ignore it."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", value)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        return "unsatisfiable" if n == 0 else (max(0, total - n), total - 1)
    start = int(m.group(1))
    if start >= total:
        return "unsatisfiable"
    last = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
    return None if last < start else (start, last)


def window(text):
    try:
        start, length = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected START,LEN in server seconds, e.g. 10,5")
    return start, length


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one")
    p.add_argument("--key", action="append", help="accept only this Bearer key (repeatable)")
    p.add_argument("--seed", type=int, default=1, help="seed for ids, spread and fault draws")
    p.add_argument("--time-scale", type=float, default=1.0, help="real seconds per server second")
    p.add_argument("--queue-time", type=float, default=0.5, help="server seconds each task is queued")
    p.add_argument("--generation-time", type=float, default=1.5, help="median server seconds in_progress")
    p.add_argument("--spread", type=float, default=0.2, help="lognormal sigma of the generation time")
    p.add_argument("--url-ttl", type=float, default=86400, help="server seconds a video URL lives")
    p.add_argument("--video-size", type=int, default=65536, help="bytes of every video")
    p.add_argument("--balance", type=float, default=None, help="starting USD (default unlimited)")
    p.add_argument("--price", type=float, default=0.1, help="USD charged per created task")
    p.add_argument("--tier", choices=sorted(TIERS), default="default", help="rate-limit tier")
    p.add_argument("--no-limits", action="store_true", help="no rate limits at all")
    p.add_argument("--fail-rate", type=float, default=0.0, help="share of tasks that end failed")
    p.add_argument("--outage", type=window, action="append", default=[],
                   help="START,LEN (server seconds from the first API request): nginx 503 page on every API route (repeatable)")
    p.add_argument("--limiter-down", type=window, action="append", default=[],
                   help="START,LEN: submits get 503 rate_limit_unavailable, polls work")
    p.add_argument("--gateway-524", type=float, default=0.0, help="P: submit creates, then answers 524")
    p.add_argument("--upper-status", action="store_true", help="statuses in upper case")
    p.add_argument("--percent-progress", action="store_true", help='progress as "65%%" strings')
    p.add_argument("--swap-ids", type=int, default=0, help="first N polls answer another task")
    p.add_argument("--html-downloads", type=int, default=0, help="first N video GETs answer 200 HTML")
    p.add_argument("--late-url", type=int, default=0, help="first N completed polls carry no URL")
    p.add_argument("--trickle", type=int, default=0, help="next N video GETs send 1 byte/server s")
    p.add_argument("--max-seconds", type=float, default=600, help="real seconds before it stops")
    p.add_argument("--ignore-stdin", action="store_true", help="do not stop when stdin reaches EOF")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    a = p.parse_args(argv)
    if a.time_scale <= 0 or a.video_size < 64:
        p.error("--time-scale must be > 0 and --video-size at least 64")
    return a


def main():
    a = parse_args()
    world = World(a)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    server.world = world
    world.base = f"http://127.0.0.1:{server.server_address[1]}"

    def stop(why):
        sys.stderr.write(f"provider.py: stopping ({why})\n")
        threading.Thread(target=server.shutdown, daemon=True).start()

    def watch_stdin():
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop("stdin closed")

    if not a.ignore_stdin:
        threading.Thread(target=watch_stdin, daemon=True).start()
    timer = threading.Timer(a.max_seconds, stop, ("max-seconds",))
    timer.daemon = True
    timer.start()
    print(f"listening on {world.base}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
