"""A fixed self-signed certificate for 127.0.0.1/localhost, so the loopback API can speak HTTPS.

Used by `LoopbackApi(tls=True)` (kubectl sends bearer tokens only over TLS). The key is public: it protects
nothing and must never be used outside loopback testing. Valid 2020-01-01 to 2049-12-31 (P-256).
"""

CERT_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBpjCCAUygAwIBAgIBATAKBggqhkjOPQQDAjAiMSAwHgYDVQQDDBdsb29wYmFj
ay1rdWJlLWFwaXNlcnZlcjAeFw0yMDAxMDEwMDAwMDBaFw00OTEyMzEwMDAwMDBa
MCIxIDAeBgNVBAMMF2xvb3BiYWNrLWt1YmUtYXBpc2VydmVyMFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAEhhtecUR83I36feM7N76T9xyvTWbnA84aHSv7gBfpiiPA
7+xvUJnCKyQzZYmlX+13WUeg3hEHYlqi4aKSFsjQ6aNzMHEwGgYDVR0RBBMwEYcE
fwAAAYIJbG9jYWxob3N0MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgKE
MBMGA1UdJQQMMAoGCCsGAQUFBwMBMB0GA1UdDgQWBBRFXDt51cTW9yygyv8G5Mx2
NbruSjAKBggqhkjOPQQDAgNIADBFAiA2UG07/4qgIxv4kMgjbPbLiAve1Nx+SiPL
LeQDoHM4/QIhAIgnDWi205QjyQ0HXc7jlIJilW3BZiynzKv2YoySMVrH
-----END CERTIFICATE-----
"""

KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7L2daE2xJVFons7m
htKdAH1mvpA67jhlODb2o3ijHr6hRANCAASGG15xRHzcjfp94zs3vpP3HK9NZucD
zhodK/uAF+mKI8Dv7G9QmcIrJDNliaVf7XdZR6DeEQdiWqLhopIWyNDp
-----END PRIVATE KEY-----
"""
