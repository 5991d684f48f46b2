#!/usr/bin/env python3
"""A TLS-terminating proxy on 127.0.0.1 for the keystone tests.

    tls_proxy.py CERT.pem KEY.pem UPSTREAM_PORT

Listens on a free 127.0.0.1 port, prints it as its only line on stdout,
and forwards every connection, decrypted, to 127.0.0.1:UPSTREAM_PORT (the
harness's plain-http Keystone). A client that refuses the certificate just
ends its connection. Standard library only; runs until killed.
"""
import socket
import ssl
import sys
import threading


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(raw, context, upstream_port):
    try:
        conn = context.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        return
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        conn.close()
        return
    threading.Thread(target=pump, args=(upstream, conn), daemon=True).start()
    pump(conn, upstream)


def main():
    cert, key, upstream_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    while True:
        raw, _ = listener.accept()
        threading.Thread(
            target=serve, args=(raw, context, upstream_port), daemon=True
        ).start()


if __name__ == "__main__":
    main()
