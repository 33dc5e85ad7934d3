"""The web's gunicorn worker: the sync worker, taking the form first."""

import os

from gunicorn.workers.sync import SyncWorker

from web import config

# Forms taken in a row while other connections wait: the form first, but a
# flood of form loads still leaves posts and receipts one turn in four.
FORMS_IN_A_ROW = 3


class FormFirstWorker(SyncWorker):
    """Past capacity every listener has a queue.  gunicorn's sync worker
    takes one connection from each ready listener in turn, which left the
    form (the costliest page, a fifth of a visit's requests) too little of
    the web: at twice the capacity one visitor in five got the busy page
    for it.  This one takes the form's listener (APP_FORM_SOCKET) alone
    while a connection waits there, up to FORMS_IN_A_ROW times in a row
    while others wait too, so a new visitor gets the form within about one
    request's time, and posts and receipt polls wait on their own short
    queue, whose excess the proxy refuses at once with its busy page
    (docs/reliability.md, "Overload").  Without APP_FORM_SOCKET it is the
    sync worker."""

    def init_process(self):
        form_socket = config.server(os.environ)["APP_FORM_SOCKET"]
        self.form_listeners = [s for s in self.sockets if form_socket and s.cfg_addr == form_socket]
        self.forms_in_a_row = 0
        super().init_process()  # runs the worker: the last step

    def wait(self, timeout):
        ready = super().wait(timeout) or []
        forms = [s for s in ready if s in self.form_listeners]
        others = [s for s in ready if s in self.sockets and s not in self.form_listeners]
        if forms and others and self.forms_in_a_row < FORMS_IN_A_ROW:
            self.forms_in_a_row += 1
            return forms
        self.forms_in_a_row = 0
        return ready
