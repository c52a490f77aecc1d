"""The GoQ operator (``goq.operator``): reconciles GoQueues and serves the admission webhooks.

Modules, from the process down:
    running          the process: admission server, webhook registration, kopf, the sweeper
    handlers         kopf handlers (GoQueue changes, new pods asking for GoQ)
    reconciling      one GoQueue brought in line: Service, key ring copy, status, Events
    services, keys   the headless Service; the HMAC key ring Secrets
    identity_tls     the identity CA Secret and each namespace's TLS Secret; identity_certs: their rules (pure)
    provisioning     what each GoQ namespace's sidecars need: the MongoDB Secret copy, the RoleBinding
    mongodb_users    with GOQ_MONGODB_ADMIN_SECRET: a MongoDB user and database per namespace
    registration     webhook configurations and their certificate; certificates (pure)
    admission        the HTTPS server for AdmissionReviews (mutator and validator are plugged in)
    conditions       status conditions (pure); events: Kubernetes Events
    sidecar_specs    every GoQueue's spec.sidecar, in memory for the webhook
    kube             the one boundary to the Kubernetes client: API errors become GoQ errors
    settings         OperatorSettings.from_env

Must not import ``goq.sidecar`` or ``goq.webhook``; ``goq.cli.operator`` wires the webhook in.
"""
