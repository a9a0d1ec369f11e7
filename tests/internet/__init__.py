"""A stand-in internet on loopback for the first-run tests (tests/test_first_run.py): one server on
127.0.0.1 that is both an HTTP(S) proxy — for the real URLs of torchvision's dataset mirrors and
torch hub's weights, its HTTPS traffic under a test CA (trustme) that the clients trust through
SSL_CERT_FILE — and a Hugging Face mirror for HF_ENDPOINT. It serves format-true files made here."""
