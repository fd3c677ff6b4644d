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
  "Opt in: send `textDocument/didShowCompletion' and
`textDocument/didPartiallyAcceptCompletion' for ghost text."
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
  "Hide the suggestion."
  (interactive)
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

(defconst weft-agent-actions '("plan" "implement" "test" "review" "council" "explain" "status" "cancel"))

(defun weft-agent (action)
  "Run the server's `weft.agent.ACTION' on the region (or the buffer)."
  (interactive (list (completing-read "Weft agent: " weft-agent-actions nil t)))
  (let* ((server (eglot--current-server-or-lose))
         (command (concat "weft.agent." action))
         (commands (append (plist-get (plist-get (eglot--capabilities server) :executeCommandProvider) :commands) nil)))
    (if (not (member command commands))
        (message "Weft: this server has no %s (update weft)" command)
      (let* ((beg (if (use-region-p) (region-beginning) (point-min)))
             (end (if (use-region-p) (region-end) (point-max)))
             (result (jsonrpc-request
                      server :workspace/executeCommand
                      (list :command command
                            :arguments (vector (list :uri (plist-get (eglot--TextDocumentIdentifier) :uri)
                                                     :range (list :start (eglot--pos-to-lsp-position beg)
                                                                  :end (eglot--pos-to-lsp-position end))
                                                     :text (buffer-substring-no-properties beg end)))
                            :workDoneToken (format "weft/agent/%s/%d" action (random 1000000))))))
        (with-current-buffer (get-buffer-create "*weft agent*")
          (erase-buffer)
          (insert (cond ((stringp result) result)
                        ((plist-get result :markdown))
                        ((plist-get result :text))
                        (t (format "%S" result))))
          (display-buffer (current-buffer)))))))

(provide 'weft)
;;; weft.el ends here
