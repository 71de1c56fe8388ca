"""Drive a microdash MCP server with the official Python SDK (PyPI `mcp`), for bins/tests/mcp.rs.

    client.py http URL TOKEN [MODE]     Streamable HTTP, bearer TOKEN
    client.py stdio MODE -- CMD ARG...  stdio: run CMD (with the environment it is given)

MODE is `auto` (the SDK's default: `server/discover` at 2026-07-28, falling back to the
initialize handshake) or `legacy` (the handshake). Reads a JSON list of operations on stdin:
  {"op": "list_tools"} | {"op": "call", "name": ..., "args": {...}} | {"op": "list_resources"}
  {"op": "list_resource_templates"} | {"op": "read_resource", "uri": ...} | {"op": "list_prompts"}
  {"op": "get_prompt", "name": ..., "args": {...}}
and prints one JSON object: {"protocol_version": ..., "server": ..., "results": [...]}, each
result {"ok": true, "result": <the SDK's model as JSON>} or {"ok": false, "error": "..."}.
"""

import asyncio
import json
import os
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def run_ops(client, ops):
    results = []
    for op in ops:
        kind = op["op"]
        try:
            if kind == "list_tools":
                result = await client.list_tools(cache_mode="refresh") if hasattr(client, "list_tools") else None
            elif kind == "call":
                result = await client.call_tool(op["name"], op.get("args"))
            elif kind == "list_resources":
                result = await client.list_resources(cache_mode="refresh")
            elif kind == "list_resource_templates":
                result = await client.list_resource_templates(cache_mode="refresh")
            elif kind == "read_resource":
                result = await client.read_resource(op["uri"], cache_mode="refresh")
            elif kind == "list_prompts":
                result = await client.list_prompts(cache_mode="refresh")
            elif kind == "get_prompt":
                result = await client.get_prompt(op["name"], op.get("args"))
            else:
                raise ValueError(f"unknown op {kind}")
            results.append({"ok": True, "result": dump(result)})
        except Exception as e:  # a protocol error: reported, and the next operation goes on
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    return results


async def main():
    ops = json.load(sys.stdin)
    if sys.argv[1] == "http":
        url, token = sys.argv[2], sys.argv[3]
        mode = sys.argv[4] if len(sys.argv) > 4 else "auto"
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with http:
            transport = streamable_http_client(url, http_client=http)
            async with Client(transport, mode=mode) as client:
                results = await run_ops(client, ops)
                out = {"protocol_version": client.protocol_version, "results": results}
                info = client.server_info
                out["server"] = info.name if info is not None else None
    else:
        mode = sys.argv[2]
        sep = sys.argv.index("--")
        command, args = sys.argv[sep + 1], sys.argv[sep + 2 :]
        # The SDK passes the child only a safe minimum of the environment; microdash's settings go too.
        env = {k: v for k, v in os.environ.items() if k.startswith("MICRODASH_") or k == "USE_MCP"}
        params = StdioServerParameters(command=command, args=args, env=env)
        async with Client(params, mode=mode) as client:
            results = await run_ops(client, ops)
            info = client.server_info
            out = {
                "protocol_version": client.protocol_version,
                "server": info.name if info is not None else None,
                "results": results,
            }
    json.dump(out, sys.stdout)


asyncio.run(main())
