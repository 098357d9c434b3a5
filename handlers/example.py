#!/usr/bin/env python3
"""An example out-of-process Conduit handler (config/examples/process.yaml routes `example.*` here).

    example.upper  replies with the payload in upper case
    example.echo   replies with the payload and the request's own headers
    example.push   pushes the payload to the client named in header `target` (route
                   `example.pushed`, `from` = the sender), then replies {"data":{"pushed":true}}
    anything else  NotFoundError
"""
from conduit_child import Child

PASSED_THROUGH = {"x-client", "x-request", "route", "token", "seq"}


def main():
    child = Child()
    for request in child.requests():
        action = request.route.rsplit(".", 1)[-1]
        if action == "upper":
            child.reply(request, request.payload.upper())
        elif action == "echo":
            own = [(k, v) for k, v in request.headers if k not in PASSED_THROUGH]
            child.reply(request, request.payload, own)
        elif action == "push":
            target = request.get("target")
            if target is None:
                child.fail(request, "BadRequestError", "example.push needs the header 'target'")
                continue
            child.push(target, [("route", "example.pushed"), ("from", request.client)], request.payload)
            child.reply(request, b'{"data":{"pushed":true}}')
        else:
            child.fail(request, "NotFoundError", f"example has no action '{action}'")


if __name__ == "__main__":
    main()
