;;; test.el --- real-client test: emacs -batch + eglot + weft lsp  -*- lexical-binding: t; -*-
(require 'package)
(package-initialize)
(require 'eglot)
(add-to-list 'load-path (getenv "WEFT_EMACS_DIR"))
(require 'weft)

(defun weft-test--fail (fmt &rest args)
  (princ (concat "FAIL: " (apply #'format fmt args) "\n") #'external-debugging-output)
  (kill-emacs 1))

(defun weft-test--out (fmt &rest args)
  (princ (concat (apply #'format fmt args) "\n")))

(setq weft-program (getenv "WEFT_BIN")
      weft-model (getenv "WEFT_MODEL")
      weft-telemetry t
      eglot-sync-connect t
      eglot-connect-timeout 60
      eglot-events-buffer-size 200000
      jsonrpc-default-request-timeout 120)
(weft-setup)
;; The fixture lives in a temporary directory without VCS: a transient project.
(add-hook 'project-find-functions (lambda (dir) (cons 'transient dir)))

(condition-case err
    (progn
      (find-file (getenv "WEFT_TEST_FILE"))
      (python-mode)
      (apply #'eglot (eglot--guess-contact))
      (unless (eglot-current-server) (weft-test--fail "eglot did not connect"))
      (weft-test--out "eglot connected: %s" (plist-get (eglot--server-info (eglot-current-server)) :name))
      ;; Point after "    return " on line 4.
      (goto-char (point-min))
      (forward-line 3)
      (end-of-line)
      (let* ((capf (eglot-completion-at-point))
             (table (nth 2 capf))
             (candidates (all-completions "" table)))
        (unless capf (weft-test--fail "eglot-completion-at-point returned nil"))
        (weft-test--out "completion-at-point candidates: %S" (mapcar #'substring-no-properties candidates))
        (unless (and candidates (cl-some (lambda (c) (not (string-empty-p (string-trim c)))) candidates))
          (weft-test--fail "no completion candidate"))
        ;; Accept the first candidate like `completion-at-point' does:
        ;; insert it, then run the exit function (eglot applies the
        ;; textEdit; weft.el runs the accept command).
        (let* ((before (buffer-string))
               (proxy (car candidates))
               (exit (plist-get (nthcdr 3 capf) :exit-function)))
          (insert proxy)
          (funcall exit proxy 'finished)
          (when (equal before (buffer-string)) (weft-test--fail "the buffer did not change"))
          (weft-test--out "buffer after accepting:\n%s" (buffer-string))
          (weft-test--out "accepted candidate: %S" (substring-no-properties proxy))))
      ;; The exit function ran the item's command (weft.el's advice).
      (unless (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
                (save-excursion (goto-char (point-min))
                                (and (search-forward "workspace/executeCommand" nil t)
                                     (search-forward "weft.completion.accepted" nil t))))
        (weft-test--fail "the accept command was not sent"))
      (weft-test--out "accept command sent: workspace/executeCommand weft.completion.accepted")
      ;; Ghost text from textDocument/inlineCompletion, accepted by word, then whole.
      (goto-char (point-max))
      (insert "\ndef add(a, b):\n    return ")
      (eglot--signal-textDocument/didChange)
      (let ((text (weft-complete)))
        (unless text (weft-test--fail "weft-complete: no inline completion"))
        (weft-test--out "inline suggestion: %S" text)
        (let ((start (point)))
          (weft-accept-word)
          ;; While a suggestion is shown, TAB is `weft-accept'.
          (unless (eq (key-binding (kbd "TAB")) 'weft-accept)
            (weft-test--fail "TAB is %S while a suggestion is shown" (key-binding (kbd "TAB"))))
          (call-interactively (key-binding (kbd "TAB")))
          (when weft--suggestion (weft-test--fail "the suggestion is still shown after TAB"))
          (unless (equal (buffer-substring-no-properties start (point)) text)
            (weft-test--fail "accepted %S, expected %S" (buffer-substring-no-properties start (point)) text))))
      ;; Telemetry notifications went out; the server still answers.
      (let ((resp (jsonrpc-request (eglot-current-server) :textDocument/completion
                                   (eglot--CompletionParams))))
        (weft-test--out "completion after telemetry: %d items"
                        (length (if (vectorp resp) resp (plist-get resp :items)))))
      ;; Dismissing a shown suggestion (C-g) tells the server.
      (goto-char (point-max))
      (insert "\ndef sub(a, b):\n    return ")
      (eglot--signal-textDocument/didChange)
      (unless (weft-complete) (weft-test--fail "weft-complete: no suggestion to dismiss"))
      (call-interactively (key-binding (kbd "C-g")))
      (when weft--suggestion (weft-test--fail "the suggestion is still shown after C-g"))
      (unless (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
                (save-excursion (goto-char (point-min)) (search-forward "weft/didDismissCompletion" nil t)))
        (weft-test--fail "weft/didDismissCompletion was not sent"))
      (weft-test--out "dismiss: weft/didDismissCompletion sent")
      ;; An agent on the region: weft-agent runs weft.agent.explain in the
      ;; background; its progress and report arrive while Emacs waits.
      (transient-mark-mode 1)
      (goto-char (point-min))
      (set-mark (point))
      (forward-line 3)
      (activate-mark)
      (unless (use-region-p) (weft-test--fail "no active region"))
      (weft-agent "explain")
      (deactivate-mark)
      (let ((deadline (+ (float-time) 240)))
        (while (and (< (float-time) deadline)
                    (not (and (get-buffer "*weft agent*")
                              (with-current-buffer "*weft agent*" (> (buffer-size) 0)))))
          (accept-process-output nil 0.2)))
      (let ((report (if (get-buffer "*weft agent*")
                        (with-current-buffer "*weft agent*" (buffer-string))
                      "")))
        (weft-test--out "agent report:\n%s" report)
        (unless (string-prefix-p "## Weft explain: completed\n" report)
          (weft-test--fail "weft-agent explain: no completed report")))
      ;; The response and the progress `end' notification travel
      ;; separately: the end may arrive just after the report.
      (let ((deadline (+ (float-time) 10))
            (seen nil))
        (while (and (not seen) (< (float-time) deadline))
          (setq seen (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
                       (save-excursion (goto-char (point-min))
                                       (and (search-forward "$/progress" nil t)
                                            (search-forward "weft/agent/explain/" nil t)
                                            (search-forward ":kind \"end\"" nil t)))))
          (unless seen (accept-process-output nil 0.1)))
        (unless seen
          (weft-test--fail "no $/progress end for the agent's token")))
      (weft-test--out "agent progress: begin ... end seen")
      ;; weft-agent-resume reaches the server, which says why the finished
      ;; explain run cannot be resumed.
      (let* ((status (jsonrpc-request (eglot-current-server) :workspace/executeCommand
                                      (list :command "weft.agent.status" :arguments (vector (list)))))
             (run-id (plist-get (seq-find (lambda (r) (equal (plist-get r :workflow) "explain"))
                                          (plist-get status :runs))
                                :runId))
             (deadline (+ (float-time) 10)))
        (unless run-id (weft-test--fail "weft.agent.status lists no explain run: %S" status))
        (setq weft--agent-last-error nil)
        (weft-agent-resume run-id "and the edge cases")
        (while (and (not weft--agent-last-error) (< (float-time) deadline))
          (accept-process-output nil 0.1))
        (unless (string-match-p "is completed, not waiting_for_input" (or weft--agent-last-error ""))
          (weft-test--fail "weft-agent-resume of a completed run: %S" weft--agent-last-error))
        (weft-test--out "weft-agent-resume: %s" weft--agent-last-error))
      (weft-test--out "%s" (weft-status-string))
      (let ((inhibit-message t)) (eglot-shutdown (eglot-current-server)))
      (weft-test--out "emacs test: PASS")
      (kill-emacs 0))
  (error (weft-test--fail "%S" err)))
