// The benchmark upstream: node's hello world on 127.0.0.1:$PORT (also run by PM2 in cluster mode).
const http = require("http");
http
  .createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("hello world\n");
  })
  .listen(+process.env.PORT, "127.0.0.1");
