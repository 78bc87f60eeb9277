#!/bin/sh
# A workload touching files, processes, pipes, sockets, memory.
for i in 1 2 3 4 5; do
  ls -la /usr/bin > /tmp/ls.out
  wc -l /tmp/ls.out > /dev/null
  dd if=/dev/zero of=/tmp/dd.out bs=64k count=64 conv=fsync 2>/dev/null
  python3 -c '
import socket, threading, os
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
def srv():
    c, _ = s.accept(); c.sendall(c.recv(4096)); c.close()
t = threading.Thread(target=srv); t.start()
c = socket.create_connection(s.getsockname()); c.sendall(b"x"*3000); c.recv(4096); c.close(); t.join()
m = bytearray(8 << 20)
for j in range(0, len(m), 4096): m[j] = 1
'
  sleep 0.05
done
sync
