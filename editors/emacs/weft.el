;;; weft.el --- Weft (local-LLM code completion) through eglot  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "27.1") (eglot "1.9"))
;; Keywords: convenience, languages, tools
;; SPDX-License-Identifier: MIT OR Apache-2.0

;;; Commentary:

;; Registers `weft lsp' with eglot for the modes in `weft-modes', and adds:
;;
;; - `completion-at-point' candidates (eglot's own capf, i.e. the server's
;;   `textDocument/completion'); accepting one also runs the item's
;;   `weft.completion.accepted' command, which eglot 1.9 does not do itself;
;; - ghost text: `weft-complete' asks `textDocument/inlineCompletion' and
;;   shows the suggestion as an overlay; `weft-accept' (TAB while shown),
;;   `weft-accept-word', `weft-accept-line' and `weft-dismiss' (C-g);
;; - `weft-status': the last `weft/status' notification.
;;
;; Setup:
;;   (add-to-list 'load-path "/path/to/weft/editors/emacs")
;;   (require 'weft)
;;   (setq weft-program "/path/to/weft"
;;         weft-model "/path/to/model.gguf")
;;   (weft-setup)                        ; then M-x eglot in a Python buffer

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'seq)
(require 'eglot)
(require 'jsonrpc)

(defgroup weft nil
  "Code completion with local LLMs via `weft lsp'."
  :group 'tools
  :prefix "weft-")

(defcustom weft-program "weft"
  "The weft binary."
  :type 'string)

(defcustom weft-model nil
  "GGUF model file or registry name; nil uses weft's config.toml."
  :type '(choice (const :tag "From config.toml" nil) string))

(defcustom weft-modes '(python-mode python-ts-mode rust-mode rust-ts-mode js-mode
                        js-ts-mode typescript-mode typescript-ts-mode go-mode go-ts-mode
                        c-mode c++-mode c-ts-mode c++-ts-mode java-mode sh-mode)
  "Major modes whose buffers eglot manages with weft."
  :type '(repeat symbol))

(defcustom weft-telemetry nil
  "Opt in: send `textDocument/didShowCompletion',
`textDocument/didPartiallyAcceptCompletion' and `weft/didDismissCompletion'
for ghost text."
  :type 'boolean)

(defcustom weft-request-timeout 60
  "Seconds `weft-complete' waits for the server.
The first completion waits for the model to load."
  :type 'number)

(defface weft-suggestion '((t :inherit shadow))
  "Face of ghost-text suggestions.")

(defvar weft-status nil
  "The last `weft/status' params (a plist: :model :health :latencyMs :message).")

(defun weft-server-command (&optional _interactive)
  "The command line of `weft lsp'."
  (append (list weft-program "lsp")
          (when (and weft-model (not (string-empty-p weft-model)))
            (list "--model" weft-model))))

;;;###autoload
(defun weft-setup ()
  "Register weft with eglot for `weft-modes'."
  (interactive)
  (setq eglot-server-programs
        (cons (cons weft-modes #'weft-server-command)
              (cl-remove-if (lambda (entry) (eq (cdr entry) #'weft-server-command))
                            eglot-server-programs)))
  (advice-add 'eglot-completion-at-point :filter-return #'weft--wrap-capf))

;;; Server notifications

(cl-defmethod eglot-handle-notification
  (_server (_method (eql weft/status)) &rest params)
  "Remember `weft/status' for `weft-status'."
  (setq weft-status params)
  (force-mode-line-update t))

(defun weft-status ()
  "Show the model, its health and the last latency."
  (interactive)
  (message "%s" (weft-status-string)))

(defun weft-status-string ()
  "The status as a short string."
  (if (null weft-status)
      "Weft: no status yet"
    (let ((model (plist-get weft-status :model))
          (latency (plist-get weft-status :latencyMs)))
      (concat "Weft: "
              (if model (file-name-base model) "?")
              " · " (format "%s" (plist-get weft-status :health))
              (if (numberp latency) (format " · %d ms" (round latency)) "")
              (if-let ((msg (plist-get weft-status :message))) (concat " · " msg) "")))))

(defun weft--server-p (server)
  "Whether eglot SERVER is weft."
  (and server
       (equal "weft" (plist-get (ignore-errors (eglot--server-info server)) :name))))

;;; completion-at-point: run the accept command after a candidate

(defun weft--wrap-capf (capf)
  "Make CAPF's exit function also run the item's command (weft servers only)."
  (let ((server (ignore-errors (eglot-current-server))))
    (if (not (and capf (weft--server-p server)))
        capf
      (let* ((props (nthcdr 3 capf))
             (exit (plist-get props :exit-function)))
        (append (cl-subseq capf 0 3)
                (plist-put (copy-sequence props) :exit-function
                           (lambda (proxy status)
                             (when exit (funcall exit proxy status))
                             (when (memq status '(finished exact))
                               (weft--run-item-command
                                server (get-text-property 0 'eglot--lsp-item proxy))))))))))

(defun weft--run-item-command (server item)
  "Run the `command' of completion ITEM on SERVER."
  (when-let ((command (plist-get item :command)))
    (ignore-errors
      (jsonrpc-request server :workspace/executeCommand
                       (list :command (plist-get command :command)
                             :arguments (or (plist-get command :arguments) []))))))

;;; Ghost text from textDocument/inlineCompletion

(defvar-local weft--overlay nil)
(defvar-local weft--suggestion nil
  "The shown suggestion: (POINT TEXT ITEM ACCEPTED).")

(defvar weft-suggestion-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "TAB") #'weft-accept)
    (define-key map (kbd "<tab>") #'weft-accept)
    (define-key map (kbd "M-f") #'weft-accept-word)
    (define-key map (kbd "C-e") #'weft-accept-line)
    (define-key map (kbd "C-g") #'weft-dismiss)
    map)
  "Keys active while a suggestion is shown.")

;; The map is active while `weft--suggestion' is set (an overlay's own keymap
;; would not apply: the overlay is empty, at point).
(defvar weft--emulation-alist `((weft--suggestion . ,weft-suggestion-map)))
(add-to-list 'emulation-mode-map-alists 'weft--emulation-alist)

(defun weft-dismiss ()
  "Hide the suggestion.
Called as a command (\\[keyboard-quit] while it shows) with
`weft-telemetry' on, also send `weft/didDismissCompletion'."
  (interactive)
  (when (and weft-telemetry weft--suggestion (called-interactively-p 'any))
    (when-let ((server (eglot-current-server)))
      (jsonrpc-notify server :weft/didDismissCompletion (list :item (nth 2 weft--suggestion)))))
  (when (overlayp weft--overlay) (delete-overlay weft--overlay))
  (setq weft--overlay nil weft--suggestion nil))

(defun weft--show (pos text)
  "Show TEXT as ghost text at POS."
  (when (overlayp weft--overlay) (delete-overlay weft--overlay))
  (setq weft--overlay (make-overlay pos pos nil t nil))
  (let ((ghost (propertize text 'face 'weft-suggestion)))
    (put-text-property 0 (min 1 (length ghost)) 'cursor t ghost)
    (overlay-put weft--overlay 'after-string ghost))
  (overlay-put weft--overlay 'priority 100))

(defun weft--utf16-length (string)
  "UTF-16 code units of STRING."
  (cl-loop for c across string sum (if (> c #xFFFF) 2 1)))

(defun weft-complete (&optional automatic)
  "Ask weft for a completion at point and show it as ghost text.
Returns the suggestion's text, or nil.  AUTOMATIC: triggerKind 2."
  (interactive)
  (let* ((server (eglot--current-server-or-lose))
         (interactive (called-interactively-p 'any))
         (result (condition-case err
                     (jsonrpc-request server :textDocument/inlineCompletion
                                      (list :textDocument (eglot--TextDocumentIdentifier)
                                            :position (eglot--pos-to-lsp-position)
                                            :context (list :triggerKind (if automatic 2 1)))
                                      :timeout weft-request-timeout
                                      :cancel-on-input interactive)
                   (jsonrpc-error
                    (message "Weft: no completion (%s)"
                             (or (alist-get 'jsonrpc-error-message (cddr err)) (cadr err)))
                    nil)))
         (items (append (if (vectorp result) result (plist-get result :items)) nil))
         (item (cl-find-if (lambda (i)
                             (let ((text (plist-get i :insertText)))
                               (and (stringp text) (not (string-empty-p text)))))
                           items)))
    (weft-dismiss)
    (when item
      (let ((text (replace-regexp-in-string "\r\n" "\n" (plist-get item :insertText))))
        (setq weft--suggestion (list (point) text item ""))
        (weft--show (point) text)
        (when weft-telemetry
          (jsonrpc-notify server :textDocument/didShowCompletion (list :item item)))
        text))))

(defun weft--accept-part (part)
  "Insert PART of the suggestion; the rest stays shown."
  (pcase-let* ((`(,pos ,text ,item ,accepted) weft--suggestion)
               (server (eglot-current-server))
               (rest (substring text (length part)))
               (accepted (concat accepted part)))
    (weft-dismiss)
    (goto-char pos)
    (insert part)
    (cond ((string-empty-p rest)
           (when (and weft-telemetry (not (equal accepted part)))
             (jsonrpc-notify server :textDocument/didPartiallyAcceptCompletion
                             (list :item item :acceptedLength (weft--utf16-length accepted))))
           (when server
             (eglot--signal-textDocument/didChange)
             (weft--run-item-command server item)))
          (t
           (when weft-telemetry
             (jsonrpc-notify server :textDocument/didPartiallyAcceptCompletion
                             (list :item item :acceptedLength (weft--utf16-length accepted))))
           (setq weft--suggestion (list (point) rest item accepted))
           (weft--show (point) rest)))
    part))

(defun weft-accept ()
  "Accept the whole suggestion."
  (interactive)
  (when weft--suggestion (weft--accept-part (nth 1 weft--suggestion))))

(defun weft-accept-word ()
  "Accept the suggestion's next word."
  (interactive)
  (when weft--suggestion
    (let ((text (nth 1 weft--suggestion)))
      (weft--accept-part
       (if (string-match "\\`\\(?:[[:space:]]*[[:alnum:]_]+\\|[[:space:]]*[^[:alnum:]_[:space:]]+\\|[[:space:]]+\\)" text)
           (match-string 0 text)
         text)))))

(defun weft-accept-line ()
  "Accept the suggestion up to the end of its line."
  (interactive)
  (when weft--suggestion
    (let ((text (nth 1 weft--suggestion)))
      (weft--accept-part
       (if (string-match "\\`\n?[^\n]*" text) (match-string 0 text) text)))))

(defun weft--post-command ()
  "Dismiss the suggestion when point leaves it."
  (when (and weft--suggestion
             (not (memq this-command '(weft-accept weft-accept-word weft-accept-line weft-complete)))
             (/= (point) (car weft--suggestion)))
    (weft-dismiss)))

(define-minor-mode weft-mode
  "Ghost-text keys for weft (`weft-complete' on M-\\)."
  :lighter (:eval (if weft--suggestion " Weft*" " Weft"))
  :keymap (let ((map (make-sparse-keymap)))
            (define-key map (kbd "M-\\") #'weft-complete)
            map)
  (if weft-mode
      (add-hook 'post-command-hook #'weft--post-command nil t)
    (remove-hook 'post-command-hook #'weft--post-command t)
    (weft-dismiss)))

;;; Agents

(defconst weft-agent-actions '("plan" "implement" "test" "review" "council" "explain" "status" "cancel")
  "The server's `weft.agent.*' commands (docs/lsp-extensions.md).")

(defun weft-agent-instruction-from-text (text)
  "The text after the first TODO or FIXME in TEXT, or nil."
  (when (and text (string-match "\\<\\(?:TODO\\|FIXME\\)\\>[[:space:]:]*\\([^\n]*\\)" text))
    (let ((instruction (string-trim (match-string 1 text))))
      (unless (string-empty-p instruction) instruction))))

(defun weft--agent-line (&rest parts)
  "PARTS joined, nils dropped."
  (mapconcat #'identity (delq nil parts) ""))

(defun weft-agent-format (action result)
  "RESULT of `weft.agent.ACTION' (a plist, as eglot parses JSON) as text."
  (cond
   ((null result) (format "weft.agent.%s: done" action))
   ((stringp result) result)
   ((equal action "cancel")
    (format "Weft: run %s %s" (plist-get result :runId)
            (if (eq (plist-get result :cancelled) t) "cancelled" "was not running")))
   ((equal action "status")
    (let ((runs (append (or (plist-get result :runs) (and (plist-get result :runId) (list result))) nil)))
      (if (null runs) "Weft: no agent runs"
        (mapconcat (lambda (r)
                     (weft--agent-line "- " (plist-get r :workflow) " " (plist-get r :state)
                                       (when (stringp (plist-get r :step)) (concat " at " (plist-get r :step)))
                                       (when (stringp (plist-get r :summary)) (concat " — " (plist-get r :summary)))
                                       " (" (plist-get r :runId) ")"))
                   runs "\n"))))
   (t
    (let ((lines (list (format "## Weft %s: %s" (plist-get result :workflow) (plist-get result :state))))
          (ex (plist-get result :explanation)))
      (dolist (key '(:summary :question :error))
        (when (and (stringp (plist-get result key)) (not (string-empty-p (plist-get result key))))
          (push (concat (pcase key (:question "Question: ") (:error "Error: ") (_ "")) (plist-get result key)) lines)))
      (when ex
        (seq-doseq (step (plist-get ex :walkthrough)) (push (concat "- " step) lines))
        (seq-doseq (pitfall (plist-get ex :pitfalls)) (push (concat "- pitfall: " pitfall) lines)))
      (let ((n 0))
        (seq-doseq (step (plist-get (plist-get result :plan) :steps))
          (push (format "%d. %s (%s)" (cl-incf n) (plist-get step :description)
                        (mapconcat #'identity (plist-get step :files) ", "))
                lines)))
      (seq-doseq (review (plist-get result :reviews))
        (push (weft--agent-line (plist-get review :judge) ": " (plist-get review :verdict)
                                (when (stringp (plist-get review :summary)) (concat " — " (plist-get review :summary))))
              lines)
        (seq-doseq (f (plist-get review :findings))
          (push (format "  - [%s] %s:%s %s" (plist-get f :severity) (plist-get f :path)
                        (1+ (or (plist-get f :start_line) 0)) (plist-get f :message))
                lines)))
      (when (plist-get result :verdict) (push (concat "Verdict: " (plist-get result :verdict)) lines))
      (when-let ((tests (plist-get result :tests))) (push (concat "Tests: " (plist-get tests :status)) lines))
      (when-let ((apply (plist-get result :applyEdit)))
        (push (if (eq (plist-get apply :applied) t) "The edit was applied (undo reverts it)."
                "The edit was not applied.")
              lines))
      (mapconcat #'identity (nreverse lines) "\n")))))

(defun weft--agent-show (action result)
  "Show RESULT of ACTION in the *weft agent* buffer."
  (with-current-buffer (get-buffer-create "*weft agent*")
    (let ((inhibit-read-only t))
      (erase-buffer)
      (insert (weft-agent-format action result) "\n"))
    (display-buffer (current-buffer)))
  (when (plist-get result :state)
    (message "Weft %s: %s: %s" action (plist-get result :state)
             (or (plist-get result :question) (plist-get result :error) (plist-get result :summary) ""))))

(defun weft-agent (action &optional instruction)
  "Run the server's `weft.agent.ACTION' on the region (or the buffer).
`plan' and `implement' take INSTRUCTION (asked for; a TODO or FIXME in
the region is the default).  The run goes on in the background; eglot
shows its `$/progress' and applies its `workspace/applyEdit'; the report
lands in the *weft agent* buffer."
  (interactive (list (completing-read "Weft agent: " weft-agent-actions nil t)))
  (let* ((server (eglot--current-server-or-lose))
         (command (concat "weft.agent." action))
         (commands (append (plist-get (plist-get (eglot--capabilities server) :executeCommandProvider) :commands) nil))
         (region (use-region-p))
         (beg (if region (region-beginning) (point-min)))
         (end (if region (region-end) (point-max)))
         (text (buffer-substring-no-properties beg end)))
    (cond
     ((not (member command commands))
      (message "Weft: this server has no %s (update weft, or set [agent] enabled = true)" command))
     ((member action '("status" "cancel"))
      (let* ((status (weft--agent-status server))
             (active (seq-filter (lambda (r) (member (plist-get r :state) '("queued" "running")))
                                 (plist-get status :runs))))
        (if (equal action "status")
            (weft--agent-show "status" status)
          (if (seq-empty-p active)
              (message "Weft: no agent run is running")
            (let ((run-id (completing-read "Cancel run: " (mapcar (lambda (r) (plist-get r :runId)) active) nil t)))
              (message "%s" (weft-agent-format
                             "cancel" (jsonrpc-request server :workspace/executeCommand
                                                       (list :command command :arguments (vector (list :runId run-id)))))))))))
     (t
      (when (and (member action '("plan" "implement")) (not instruction))
        (setq instruction (read-string "Instruction: " (weft-agent-instruction-from-text text))))
      (if (and (member action '("plan" "implement")) (string-empty-p (or instruction "")))
          (message "Weft: %s needs an instruction" action)
        (weft--agent-send server action
                          (append (weft--agent-selection beg end)
                                  (list :text text)
                                  (when instruction (list :instruction instruction))))
        (message "Weft: %s started" action))))))

(defun weft--agent-status (server)
  "SERVER's answer to `weft.agent.status' for every run."
  (jsonrpc-request server :workspace/executeCommand
                   (list :command "weft.agent.status" :arguments (vector (list)))))

(defun weft--agent-selection (beg end)
  "The current document and the text between BEG and END, as `:uri' and `:range'."
  (list :uri (plist-get (eglot--TextDocumentIdentifier) :uri)
        :range (list :start (eglot--pos-to-lsp-position beg)
                     :end (eglot--pos-to-lsp-position end))))

(defvar weft--agent-last-error nil
  "The message of the last agent command the server refused.")

(defun weft--agent-send (server action argument)
  "Send `weft.agent.ACTION' with ARGUMENT (a plist) in the background.
The report lands in the *weft agent* buffer; a run that waits for input
says how to resume it."
  (let ((command (concat "weft.agent." action)))
    (jsonrpc-async-request
     server :workspace/executeCommand
     (list :command command
           :arguments (vector argument)
           :workDoneToken (format "weft/agent/%s/%d" action (random 1000000)))
     :success-fn (lambda (result)
                   (weft--agent-show action result)
                   (when (equal (plist-get result :state) "waiting_for_input")
                     (message "Weft %s waits for input: %s (M-x weft-agent-resume)"
                              (plist-get result :workflow) (plist-get result :question))))
     :error-fn (lambda (err)
                 (setq weft--agent-last-error (plist-get err :message))
                 (message "Weft: %s failed: %s" command (plist-get err :message)))
     :timeout-fn (lambda () (message "Weft: %s is still running (see M-x weft-agent status)" command))
     :timeout 3600)))

(defun weft-agent-resume (run-id answer)
  "Carry on the agent run RUN-ID, which waits for input, with ANSWER.
The active region goes along as the new selection.  Interactively, pick
one of the runs waiting for input and type the answer."
  (interactive
   (let* ((server (eglot--current-server-or-lose))
          (status (weft--agent-status server))
          (waiting (seq-filter (lambda (r) (and (equal (plist-get r :state) "waiting_for_input")
                                                (not (plist-get r :resumedBy))))
                               (plist-get status :runs)))
          (choices (mapcar (lambda (r) (cons (format "%s: %s (%s)" (plist-get r :workflow)
                                                     (plist-get r :summary) (plist-get r :runId))
                                             (plist-get r :runId)))
                           waiting)))
     (if (null choices)
         (user-error "Weft: no agent run is waiting for input")
       (list (cdr (assoc (completing-read "Resume run: " choices nil t) choices))
             (read-string "Answer: ")))))
  (let ((server (eglot--current-server-or-lose)))
    (weft--agent-send server "resume"
                      (append (list :runId run-id)
                              (unless (string-empty-p (string-trim answer)) (list :answer answer))
                              (when (use-region-p)
                                (weft--agent-selection (region-beginning) (region-end)))))
    (message "Weft: resuming %s" run-id)))

(provide 'weft)
;;; weft.el ends here
