vcl 4.1;
# Vendored from ../shared/bench/configs/varnish.vcl (team benchmark harness); run.mjs fills @ORIGIN_PORT@.
# Default builtin VCL behaviour (request coalescing via the waiting list is default), plus an X-Cache header.
# Storage is chosen on the command line (-s malloc,512m).
backend origin {
  .host = "127.0.0.1";
  .port = "@ORIGIN_PORT@";
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
