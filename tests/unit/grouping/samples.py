"""Realistic events per platform, with knobs for what varies between occurrences of one bug."""

from __future__ import annotations

import copy
from typing import Any


def python_event(
    *,
    venv: str = "/home/alice/.venvs/shop",
    root: str = "/srv/shop",
    line_offset: int = 0,
    order_id: int = 1234,
    host: str = "10.0.3.17",
    function: str = "charge",
    exc_type: str = "ConnectionError",
) -> dict[str, Any]:
    site = f"{venv}/lib/python3.11/site-packages"
    return {
        "event_id": "a" * 32,
        "timestamp": "2024-05-01T10:00:00Z",
        "level": "error",
        "platform": "python",
        "service": "payments",
        "tags": {"region": "eu-west-1"},
        "exception": {
            "values": [
                {
                    "type": exc_type,
                    "module": "requests.exceptions",
                    "value": f"HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded "
                    f"with url: /v1/charges/{order_id}",
                    "mechanism": {"type": "generic", "handled": False},
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "shop/api/views.py",
                                "abs_path": f"{root}/shop/api/views.py",
                                "module": "shop.api.views",
                                "function": "create_payment",
                                "lineno": 88 + line_offset,
                                "in_app": True,
                                "context_line": "        result = gateway.charge(order)",
                            },
                            {
                                "filename": "shop/payments/gateway.py",
                                "abs_path": f"{root}/shop/payments/gateway.py",
                                "module": "shop.payments.gateway",
                                "function": function,
                                "lineno": 41 + line_offset,
                                "in_app": True,
                                "context_line": "    resp = self.session.post(url, json=payload)",
                            },
                            {
                                "filename": "requests/sessions.py",
                                "abs_path": f"{site}/requests/sessions.py",
                                "module": "requests.sessions",
                                "function": "post",
                                "lineno": 637,
                                "in_app": False,
                            },
                            {
                                "filename": "requests/adapters.py",
                                "abs_path": f"{site}/requests/adapters.py",
                                "module": "requests.adapters",
                                "function": "send",
                                "lineno": 519,
                                "in_app": False,
                            },
                        ]
                    },
                }
            ]
        },
    }


def js_event(
    *, bundle_hash: str = "3f2a9c1b", line: int = 1, col: int = 48213, user: str = "42"
) -> dict[str, Any]:
    return {
        "event_id": "b" * 32,
        "level": "error",
        "platform": "javascript",
        "service": "web",
        "exception": {
            "values": [
                {
                    "type": "TypeError",
                    "value": "Cannot read properties of undefined (reading 'total')",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": f"https://cdn.shop.example.com/static/js/vendor.{bundle_hash}.js",
                                "function": "Object.<anonymous>",
                                "lineno": line,
                                "colno": col,
                                "in_app": False,
                            },
                            {
                                "filename": f"https://cdn.shop.example.com/static/js/main.{bundle_hash}.js",
                                "function": "async renderCart",
                                "lineno": line,
                                "colno": col + 311,
                                "in_app": True,
                            },
                            {
                                "filename": f"https://cdn.shop.example.com/static/js/main.{bundle_hash}.js",
                                "function": "computeTotals",
                                "lineno": line,
                                "colno": col + 97,
                                "in_app": True,
                            },
                        ]
                    },
                }
            ]
        },
        "user": {"id": user},
    }


def node_event(*, app_root: str = "/app", line: int = 27) -> dict[str, Any]:
    return {
        "platform": "node",
        "service": "gateway",
        "exception": [  # Sentry-style plain list is accepted too
            {
                "type": "Error",
                "value": "connect ECONNREFUSED 127.0.0.1:6379",
                "stacktrace": {
                    "frames": [
                        {
                            "filename": "node:internal/process/task_queues",
                            "function": "process.processTicksAndRejections",
                            "lineno": 95,
                            "in_app": False,
                        },
                        {
                            "filename": f"{app_root}/node_modules/ioredis/built/Redis.js",
                            "function": "Redis.sendCommand",
                            "lineno": 376,
                            "in_app": False,
                        },
                        {
                            "filename": f"{app_root}/src/cache/session.js",
                            "function": "loadSession",
                            "lineno": line,
                            "in_app": True,
                        },
                    ]
                },
            }
        ],
    }


def java_event(*, cglib: str = "8a7b6c5d", proxy: int = 12, lambda_no: int = 0) -> dict[str, Any]:
    return {
        "platform": "java",
        "service": "orders",
        "exception": {
            "values": [
                {
                    "type": "java.lang.NullPointerException",
                    "value": 'Cannot invoke "com.acme.orders.Customer.getEmail()" because "customer" is null',
                    "stacktrace": {
                        "frames": [
                            {
                                "module": f"com.sun.proxy.$Proxy{proxy}",
                                "function": "placeOrder",
                                "in_app": False,
                            },
                            {
                                "module": f"com.acme.orders.OrderService$$EnhancerBySpringCGLIB$${cglib}",
                                "function": "placeOrder",
                                "filename": "<generated>",
                                "in_app": True,
                            },
                            {
                                "module": "com.acme.orders.OrderService",
                                "function": f"lambda$placeOrder${lambda_no}",
                                "filename": "OrderService.java",
                                "lineno": 120 + lambda_no,
                                "in_app": True,
                            },
                            {
                                "module": "com.acme.orders.Notifier",
                                "function": "notify",
                                "filename": "Notifier.java",
                                "lineno": 33,
                                "in_app": True,
                            },
                        ]
                    },
                }
            ]
        },
    }


def go_event(*, closure: int = 1, gopath: str = "/home/ci/go", line: int = 57) -> dict[str, Any]:
    return {
        "platform": "go",
        "service": "ingest",
        "exception": {
            "values": [
                {
                    "type": "*net.OpError",
                    "value": "dial tcp 10.2.0.15:5432: connect: connection refused",
                    "stacktrace": {
                        "frames": [
                            {
                                "module": "main",
                                "function": "main",
                                "filename": "main.go",
                                "lineno": 12,
                                "in_app": True,
                            },
                            {
                                "module": "github.com/acme/ingest/internal/store",
                                "function": f"(*Store).Open.func{closure}",
                                "filename": "store.go",
                                "abs_path": "/src/ingest/internal/store/store.go",
                                "lineno": line,
                                "in_app": True,
                            },
                            {
                                "module": "github.com/lib/pq",
                                "function": "(*Connector).Connect",
                                "abs_path": f"{gopath}/pkg/mod/github.com/lib/pq@v1.10.9/conn.go",
                                "lineno": 301,
                                "in_app": False,
                            },
                        ]
                    },
                }
            ]
        },
    }


def log_event(message: str, *, service: str = "worker", level: str = "warning") -> dict[str, Any]:
    return {"platform": "python", "service": service, "level": level, "message": message}


def with_(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copied = copy.deepcopy(event)
    copied.update(changes)
    return copied
