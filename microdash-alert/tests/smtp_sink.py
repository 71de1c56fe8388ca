"""A real SMTP server for microdash-alert's delivery tests (aiosmtpd, installed by
scripts/test-servers.sh).

    python smtp_sink.py DIR

Listens on 127.0.0.1 on a port the system picks and prints that port as the first line of
stdout. Each message it accepts is written to DIR as one JSON file (envelope and the parsed
headers and body), renamed into place once complete. Recipients whose local part is
`refuse-permanent` get a 550 reply, `refuse-transient` a 451. Exits when its standard input
closes, so it never outlives the test that started it.
"""

import asyncio
import email
import email.policy
import json
import os
import sys
import uuid

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "refuse-permanent":
            return "550 5.1.1 mailbox unavailable"
        if local == "refuse-transient":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": [str(address) for address in message["To"].addresses],
            "subject": str(message["Subject"]),
            "content_type": message.get_content_type(),
            "charset": message.get_content_charset(),
            "body": message.get_content().replace("\r\n", "\n"),
        }
        name = uuid.uuid4().hex
        partial = os.path.join(self.directory, name + ".partial")
        with open(partial, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.rename(partial, os.path.join(self.directory, name + ".json"))
        return "250 OK"


async def main():
    loop = asyncio.get_running_loop()
    sink = Sink(sys.argv[1])
    server = await loop.create_server(lambda: SMTP(sink, hostname="smtp-sink.test"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
