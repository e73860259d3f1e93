# Stand-in for gcr.io/distroless/nodejs24-debian13:nonroot, assembled from the slim
# stand-in: the Node binary at /nodejs/bin/node and exactly the shared libraries it
# links, a CA bundle, tzdata, passwd/group with nonroot 65532, /tmp with mode 1777.
# No shell, no package manager. Like distroless, it records the Debian packages it took
# files from: one dpkg status file each under /var/lib/dpkg/status.d/ and their
# copyright files, which the image's SBOM reads.
ARG SOURCE
FROM ${SOURCE} AS source
RUN set -eu; \
    mkdir -p /out/nodejs/bin /out/etc/ssl/certs /out/usr/share /out/tmp /out/home/nonroot; \
    cp /usr/local/bin/node /out/nodejs/bin/node; \
    for lib in $(ldd /usr/local/bin/node | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do \
      mkdir -p "/out$(dirname "$lib")"; cp -L "$lib" "/out$lib"; \
    done; \
    cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/; \
    cp -a /usr/share/zoneinfo /out/usr/share/; \
    cp /etc/os-release /out/etc/os-release; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /out/etc/passwd; \
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > /out/etc/group; \
    printf 'hosts: files dns\n' > /out/etc/nsswitch.conf; \
    mkdir -p /out/var/lib/dpkg/status.d; \
    pkgs=$(for f in $(ldd /usr/local/bin/node | awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do \
             dpkg -S "$(realpath "$f")" | cut -d: -f1; \
           done | sort -u); \
    for p in $pkgs ca-certificates tzdata base-files; do \
      dpkg-query -s "$p" > "/out/var/lib/dpkg/status.d/$p" || exit 1; \
      mkdir -p "/out/usr/share/doc/$p"; cp "/usr/share/doc/$p/copyright" "/out/usr/share/doc/$p/"; \
    done; \
    chmod 1777 /out/tmp; chown 65532:65532 /out/home/nonroot

FROM scratch
COPY --from=source /out/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/nodejs/bin/node"]
