# vinit-mock-vault alone: a static binary, nothing else.
FROM scratch
COPY bin/vinit-mock-vault /vinit-mock-vault
EXPOSE 8200
HEALTHCHECK --interval=1s --timeout=2s --retries=30 CMD ["/vinit-mock-vault", "healthcheck"]
ENTRYPOINT ["/vinit-mock-vault"]
CMD ["--seed", "/seed.yaml", "--listen", "0.0.0.0:8200"]
