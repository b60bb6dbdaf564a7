#!/bin/sh
# First start: a self-signed certificate until certbot has issued one (the volume keeps certbot's).
set -e
d=/etc/letsencrypt/live/ferreteria
[ -s "$d/fullchain.pem" ] && exit 0
mkdir -p "$d"
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,DNS:nginx,IP:127.0.0.1 \
  -keyout "$d/privkey.pem" -out "$d/fullchain.pem" 2>/dev/null
