# Shared by the bench scripts (sourced from the repository's root).

# The listener lines of a bench configuration: loopback on port $1; with
# TLS ($2 = 1) the certificate in $WORK/cert.pem and $WORK/key.pem, else
# insecure_server.
gatehouse_listener() { # port tls
  echo "address: 127.0.0.1:$1"
  if [ "$2" = 1 ]; then
    echo "certificate_file: $WORK/cert.pem"
    echo "certificate_key_file: $WORK/key.pem"
  else
    echo "insecure_server: true"
  fi
}
