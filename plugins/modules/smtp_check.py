#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: smtp_check
short_description: Walk an app's mail path as the app sends, from its settings to an accepted envelope
version_added: 0.2.0
description:
  - Reads the app's SMTP settings by name from its env file (values are used, never returned; only whether each
    name is set, and the host, port, security and sender, are).
  - Then, from where the app runs (the network namespace of a container's process with O(netns_pid)), walks the
    path as the app's mail library would, and stops at the first step that fails, which is a finding. The name
    is resolved (in a container, with its own C(/etc/hosts) and DNS server), a TCP connection is made and the
    greeting read, then EHLO.
  - With O(security=starttls) STARTTLS follows, with O(security=tls) TLS from the start; either verifies the
    certificate and its name. C(cert_check) with C(starttls=smtp) tells the certificate's own details.
  - AUTH follows with the app's credentials, when any are set.
  - With O(to_address), MAIL FROM and RCPT TO follow, then RSET, so that nothing is sent.
  - With O(send_test), a test message is sent to O(to_address) (never in check mode).
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - Every step but the test message runs in check mode (they change nothing); the test message is not sent
        and RV(test_message) says why it was skipped.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  host:
    description: The SMTP server. Given, it wins over the env file's value; else the env file's O(env_names) C(host) setting.
    type: str
  port:
    description:
      - The port. Given, it wins over the env file's; else the env file's O(env_names) C(port) setting, else 25, 587 or 465 by
        O(security).
    type: int
  security:
    description:
      - V(none) (plain SMTP), V(starttls) (the app upgrades with STARTTLS) or V(tls) (TLS from the start, SMTPS).
      - Not given, it follows the env file's flags (O(env_names) C(use_ssl) setting true gives V(tls), O(env_names) C(use_tls) setting true
        gives V(starttls)), else V(none).
    type: str
    choices: [none, starttls, tls]
  username:
    description: The AUTH user. Given, it wins over the env file's O(env_names) C(username) setting.
    type: str
  password:
    description: The AUTH password. Given, it wins over the env file's O(env_names) C(password) setting. Never returned.
    type: str
  from_address:
    description: The sender for MAIL FROM. Given, it wins over the env file's O(env_names) C(from_address) setting; else C(<>).
    type: str
  to_address:
    description: A recipient for RCPT TO (and the test message). Not given, the envelope is not tried.
    type: str
  send_test:
    description: Send a test message to O(to_address) once the envelope is accepted (not in check mode).
    type: bool
    default: false
  subject:
    description: Subject of the test message (default C(sre.runbooks email check <UTC stamp>)).
    type: str
  env_file:
    description: The app's env file, read for its mail settings. Not given, only the options are used.
    type: path
  env_format:
    description: How the env file is read (V(dotenv) for docker compose and node or python-dotenv, V(shell) for sh and systemd).
    type: str
    choices: [dotenv, shell]
    default: dotenv
  env_names:
    description:
      - The names of the mail settings in the env file, by key (V(host), V(port), V(username), V(password), V(use_tls),
        V(use_ssl), V(from_address)); keys not given keep their default (C(SMTP_HOST), C(SMTP_PORT), C(SMTP_USER),
        C(SMTP_PASSWORD), C(SMTP_USE_TLS), C(SMTP_USE_SSL), C(SMTP_FROM)). A Flask-Mail app names C(MAIL_SERVER),
        C(MAIL_PORT), C(MAIL_USERNAME), C(MAIL_PASSWORD), C(MAIL_USE_TLS), C(MAIL_USE_SSL), C(MAIL_DEFAULT_SENDER).
    type: dict
    default: {}
  netns_pid:
    description:
      - Check from the network namespace of this process (a container's main process, as C(app_status) returns it),
        so that C(127.0.0.1) and service names mean what they mean to the app. Needs root.
      - C(0), the default, checks from the host.
    type: int
    default: 0
  timeout:
    description: Seconds each network step may take.
    type: float
    default: 10
  validate_certs:
    description: Verify the server's certificate and name (as the app's mail library does by default).
    type: bool
    default: true
  ca_path:
    description: A PEM file of CA certificates to verify with, instead of the system's.
    type: path
  ehlo_name:
    description: The name sent with EHLO (default this host's FQDN).
    type: str
  fail_on:
    description: Fail the task when the status reaches V(warning) or V(critical); V(never) only reports.
    type: str
    choices: [never, warning, critical]
    default: never
notes:
  - Secrets stay in the module process. Server replies are returned with the username and password masked.
seealso:
  - module: sre.runbooks.cert_check
  - module: sre.runbooks.env_file
"""

EXAMPLES = r"""
- name: Check Ferreteria's mail path from its web container
  sre.runbooks.smtp_check:
    env_file: /srv/ferreteria/.env.prod
    netns_pid: "{{ web_status.instances[0].pid }}"
    to_address: ops@example.com
  register: mail

- name: Send a test message with Flask-Mail's names
  sre.runbooks.smtp_check:
    env_file: /srv/app/.env
    env_names: {host: MAIL_SERVER, port: MAIL_PORT, username: MAIL_USERNAME, password: MAIL_PASSWORD,
                use_tls: MAIL_USE_TLS, use_ssl: MAIL_USE_SSL, from_address: MAIL_DEFAULT_SENDER}
    to_address: ops@example.com
    send_test: true
    fail_on: critical
"""

RETURN = r"""
settings:
  description: The settings used (no secret), where each came from (V(option), V(env_file) or V(default)), and
    which of the mail names the env file sets.
  returned: always
  type: dict
  sample: {host: 127.0.0.1, port: 25, security: none, from_address: null, username_set: false, password_set: false,
           source: {host: env_file, port: env_file, security: default}, env_names_present: [SMTP_HOST, SMTP_PORT]}
reachable:
  description: A TCP connection was made.
  returned: always
  type: bool
address:
  description: The address and port connected to (after resolution).
  returned: always
  type: str
banner:
  description: The server's greeting.
  returned: always
  type: str
esmtp:
  description: The EHLO keywords the server offers (after STARTTLS when used).
  returned: always
  type: list
  elements: str
tls:
  description: C(offered) (STARTTLS offered), C(used), C(version), C(cipher), C(verified), C(error).
  returned: always
  type: dict
auth:
  description: C(mechanisms) offered, C(attempted), C(ok), and the server's C(code) and C(message) (masked).
  returned: always
  type: dict
envelope:
  description: C(attempted), C(from_ok), C(to_ok), the last C(code) and C(message); reset after, so nothing is sent.
  returned: always
  type: dict
test_message:
  description: C(sent), its C(message_id), or why it was C(skipped).
  returned: always
  type: dict
elapsed_ms:
  description: Time the network steps took.
  returned: always
  type: int
findings:
  description: Findings ({severity, code, message}); codes C(smtp_not_configured), C(smtp_dns), C(smtp_unreachable),
    C(smtp_greeting), C(smtp_tls_failed), C(smtp_starttls_missing), C(smtp_plaintext), C(smtp_auth_unsupported),
    C(smtp_auth_failed), C(smtp_auth_required), C(smtp_sender_rejected), C(smtp_recipient_rejected),
    C(smtp_message_refused), C(smtp_dropped).
  returned: always
  type: list
  elements: dict
status:
  description: C(ok), C(warning) or C(critical), the worst finding.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.runbooks.plugins.module_utils import _smtp
from ansible_collections.sre.runbooks.plugins.module_utils._common import FAIL_ON_CHOICES, fail_message, should_fail


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str"),
            port=dict(type="int"),
            security=dict(type="str", choices=list(_smtp.SECURITY_CHOICES)),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            from_address=dict(type="str"),
            to_address=dict(type="str"),
            send_test=dict(type="bool", default=False),
            subject=dict(type="str"),
            env_file=dict(type="path"),
            env_format=dict(type="str", choices=["dotenv", "shell"], default="dotenv"),
            env_names=dict(type="dict", default={}),
            netns_pid=dict(type="int", default=0),
            timeout=dict(type="float", default=10.0),
            validate_certs=dict(type="bool", default=True),
            ca_path=dict(type="path"),
            ehlo_name=dict(type="str"),
            fail_on=dict(type="str", choices=FAIL_ON_CHOICES, default="never"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    unknown = set(p["env_names"]) - set(_smtp.DEFAULT_NAMES)
    if unknown:
        module.fail_json(msg="env_names: unknown keys %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(sorted(_smtp.DEFAULT_NAMES))))
    if p["netns_pid"] < 0:
        module.fail_json(msg="netns_pid must be a process id, not %d" % p["netns_pid"])
    if p["timeout"] <= 0:
        module.fail_json(msg="timeout must be more than 0 seconds")
    names = dict(_smtp.DEFAULT_NAMES)
    names.update(dict((k, v) for k, v in p["env_names"].items() if v))
    try:
        from_env, present = _smtp.read_settings(p["env_file"], p["env_format"], names)
        settings, source = _smtp.merge_settings(p, from_env)
        for secret in (settings.get("password"), settings.get("username")):
            if secret:
                module.no_log_values.add(secret)
        root = "/"
        if p["netns_pid"]:
            root = "/proc/%d/root" % p["netns_pid"]
            _smtp.enter_netns(p["netns_pid"])
        result, findings = _smtp.check(settings, to_address=p["to_address"], send_test=p["send_test"],
                                       check_mode=module.check_mode, timeout=p["timeout"],
                                       validate_certs=p["validate_certs"], ca_path=p["ca_path"], root=root,
                                       ehlo_name=p["ehlo_name"], subject=p["subject"])
    except _smtp.SmtpCheckError as exc:
        module.fail_json(msg=str(exc))
    status = findings.status()
    result.update(
        changed=bool(result["test_message"]["sent"]),
        settings={"host": settings.get("host"), "port": settings["port"], "security": settings["security"],
                  "from_address": settings.get("from_address"), "username_set": bool(settings.get("username")),
                  "password_set": bool(settings.get("password")), "source": source, "env_names_present": present},
        findings=findings.as_list(), status=status,
    )
    if should_fail(status, p["fail_on"]):
        module.fail_json(msg=fail_message("smtp_check", status, result["findings"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
